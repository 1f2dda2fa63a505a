"""TensorFlow Serving's PredictionService and ModelService over a ServableManager.

Each RPC turns the request into arrays, runs the servable, and turns the result back into protos;
errors map to the status codes TF Serving uses (NOT_FOUND for an unknown model or version,
INVALID_ARGUMENT for bad inputs, UNIMPLEMENTED for Classify/Regress/MultiInference).
"""

from __future__ import annotations

import logging
import pathlib

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import any_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from dfp.admission import overload_status
from services.detector.export import SIGNATURE
from services.detector.model_server.servables import Servable, ServableManager

log = logging.getLogger(__name__)


def _servable(manager: ServableManager, model_spec, context) -> Servable:
    if not model_spec.name:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "model_spec.name is required")
    version = None
    if model_spec.HasField("version"):
        version = model_spec.version.value
    elif model_spec.version_label:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "version labels are not configured on this server")
    servable = manager.get(model_spec.name, version)
    if servable is None:
        wanted = f"Specific({model_spec.name}, {version})" if version is not None else f"Latest({model_spec.name})"
        context.abort(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {wanted}")
    return servable


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, manager: ServableManager):
        self._manager = manager

    def Predict(self, request: predict_pb2.PredictRequest, context) -> predict_pb2.PredictResponse:
        servable = _servable(self._manager, request.model_spec, context)
        signature = request.model_spec.signature_name or SIGNATURE
        signature_def = servable.signature_defs.get(signature)
        if signature_def is None:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Serving signature key \"{signature}\" not found; available: {sorted(servable.signature_defs)}",
            )
        expected = set(signature_def.inputs)
        if set(request.inputs) != expected:
            context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"inputs {sorted(request.inputs)} do not match signature inputs {sorted(expected)}",
            )
        inputs = {}
        for key, tensor in request.inputs.items():
            spec = signature_def.inputs[key]
            try:
                array = tf.make_ndarray(tensor)
            except Exception as exc:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r} is not a valid tensor: {exc}")
            problem = _shape_problem(array, spec)
            if problem:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"input {key!r}: {problem}")
            inputs[key] = array
        try:
            outputs = servable.run(signature, inputs)
        except OverflowError:
            message = "the model server's batching queue is full; retry in 100 ms"
            context.set_trailing_metadata(overload_status(message, 0.1))
            context.abort(grpc.StatusCode.UNAVAILABLE, message)
        wanted = set(request.output_filter) or set(outputs)
        unknown = wanted - set(outputs)
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"output_filter names unknown outputs {sorted(unknown)}")
        response = predict_pb2.PredictResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.model_spec.signature_name = signature
        for key in wanted:
            response.outputs[key].CopyFrom(tf.make_tensor_proto(outputs[key]))
        return response

    def GetModelMetadata(self, request, context):
        servable = _servable(self._manager, request.model_spec, context)
        fields = list(request.metadata_field)
        if fields != ["signature_def"]:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "metadata_field must be exactly [\"signature_def\"]")
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, value in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(value)
        packed = any_pb2.Any()
        packed.Pack(signature_map)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = servable.name
        response.model_spec.version.value = servable.version
        response.metadata["signature_def"].CopyFrom(packed)
        return response

    def Classify(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Classify is not served; use Predict")

    def Regress(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "Regress is not served; use Predict")

    def MultiInference(self, request, context):
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "MultiInference is not served; use Predict")


def _shape_problem(array: np.ndarray, spec) -> str:
    dtype = tf.as_dtype(spec.dtype).as_numpy_dtype
    if array.dtype != dtype:
        return f"dtype {array.dtype}, expected {np.dtype(dtype).name}"
    if spec.tensor_shape.unknown_rank:
        return ""
    dims = [d.size for d in spec.tensor_shape.dim]
    if array.ndim != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, array.shape)):
        shown = ["-1" if d < 0 else str(d) for d in dims]
        return f"shape {list(array.shape)}, expected [{', '.join(shown)}]"
    return ""


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, manager: ServableManager):
        self._manager = manager

    def GetModelStatus(self, request, context):
        name = request.model_spec.name
        state = self._manager.status(name)
        if state is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        Status = get_model_status_pb2.ModelVersionStatus
        entries = [(v, Status.END, "") for v in state.unloaded_versions]
        if state.servable is not None:
            entries.append((state.servable.version, Status.AVAILABLE, ""))
        if state.failed_version is not None:
            entries.append((state.failed_version, Status.END, state.error))
        if request.model_spec.HasField("version"):
            entries = [e for e in entries if e[0] == request.model_spec.version.value]
        if not entries:
            context.abort(grpc.StatusCode.NOT_FOUND, f"Could not find version of model {name}")
        response = get_model_status_pb2.GetModelStatusResponse()
        for version, model_state, error in entries:
            item = response.model_version_status.add(version=version, state=model_state)
            if error:
                item.status.CopyFrom(status_pb2.StatusProto(error_code=13, error_message=error))
        return response

    def HandleReloadConfigRequest(self, request: model_management_pb2.ReloadConfigRequest, context):
        config = request.config
        if config.WhichOneof("config") != "model_config_list":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only model_config_list is supported")
        models = {}
        for model in config.model_config_list.config:
            if not model.name or not model.base_path:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every model needs a name and a base_path")
            if model.model_platform not in ("", "tensorflow"):
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"unsupported platform {model.model_platform!r}")
            models[model.name] = pathlib.Path(model.base_path)
        self._manager.reload_config(models)
        return model_management_pb2.ReloadConfigResponse(status=status_pb2.StatusProto(error_code=0))
