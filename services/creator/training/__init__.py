"""Training the platform's own FOMM model at small scale."""
