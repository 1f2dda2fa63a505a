"""A model server that speaks TensorFlow Serving's gRPC API over a TF Serving model base path.

TensorFlow Serving's own binary is not installable here; this server implements the same API
(PredictionService Predict and GetModelMetadata, ModelService GetModelStatus and
HandleReloadConfigRequest) with the official `tensorflow_serving.apis` stubs, so clients written for
TensorFlow Serving work unchanged, and the gateway works unchanged against the official image.
"""
