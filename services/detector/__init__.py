"""Detector service: MesoNet in Keras, its SavedModel export, and a TensorFlow Serving API server."""

from dfp.quiet_tensorflow import import_tensorflow

import_tensorflow()
