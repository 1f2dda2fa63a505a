"""Training the platform's face restoration network."""
