"""Detector training: datasets from a labels CSV, augmentation, the training loop."""
