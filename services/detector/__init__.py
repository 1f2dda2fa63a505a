"""Detector service: MesoNet in Keras, its SavedModel export, and a TensorFlow Serving API server."""

import os

# TensorFlow's C++ start-up chatter goes to stderr of every command that scores; keep errors only.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
