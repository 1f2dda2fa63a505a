"""The gateway's client for the detector: TensorFlow Serving's PredictionService, official stubs.

The same code talks to the platform's own model server here and to the official tensorflow/serving
image in a cluster. Every call carries a deadline; failures map to the gateway's errors.

Crops travel as the dtype the model's signature asks for, read once per model with
GetModelMetadata: uint8 pixels for models exported by this platform (a quarter of float32's bytes),
float32 in [0, 1] for older versions. A new version with another dtype is noticed by the server's
INVALID_ARGUMENT, and the call is sent again once after reading the signature anew.
"""

from __future__ import annotations

import dataclasses
import threading

import grpc
import numpy as np

from dfp.quiet_tensorflow import import_tensorflow

import_tensorflow()

from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

from dfp.grpc_util import MutualTls, service_channel
from dfp.observability import outgoing_metadata
from gateway.errors import ApiError, InvalidArgument, ResourceNotFound, Unavailable

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "fake_probability"


_WIRE_DTYPES = {types_pb2.DT_UINT8: np.uint8, types_pb2.DT_FLOAT: np.float32}


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A uint8 or float32 array as a TensorProto, its bytes in tensor_content (what TF Serving reads
    fastest)."""
    dtype = {np.dtype(np.uint8): types_pb2.DT_UINT8, np.dtype(np.float32): types_pb2.DT_FLOAT}[array.dtype]
    array = np.ascontiguousarray(array)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    return tensor_pb2.TensorProto(dtype=dtype, tensor_shape=shape, tensor_content=array.tobytes())


def as_wire_dtype(crops: np.ndarray, dtype: int) -> np.ndarray:
    """uint8 crops as the signature's input dtype: unchanged for DT_UINT8, scaled to [0, 1] for DT_FLOAT."""
    if dtype == types_pb2.DT_UINT8:
        return crops
    return crops.astype(np.float32) / 255.0


def from_tensor_proto(proto: tensor_pb2.TensorProto) -> np.ndarray:
    if proto.dtype != types_pb2.DT_FLOAT:
        raise ValueError(f"expected a float tensor, got dtype {proto.dtype}")
    shape = [d.size for d in proto.tensor_shape.dim]
    if proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np.float32).reshape(shape)
    return np.asarray(proto.float_val, dtype=np.float32).reshape(shape)


@dataclasses.dataclass(frozen=True)
class Prediction:
    fake_probability: np.ndarray
    model: str
    version: int


class DetectorClient:
    def __init__(self, target: str, timeout_s: float = 30.0, mtls: MutualTls | None = None):
        self._channel = service_channel(target, retry_unavailable=True, mtls=mtls)
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._timeout_s = timeout_s
        self._input_dtypes: dict[str, int] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        self._channel.close()

    def input_dtype(self, model: str, version: int | None = None, refresh: bool = False) -> int:
        """The DataType of `model`'s serving input, from its signature (cached per model)."""
        with self._lock:
            if not refresh and model in self._input_dtypes:
                return self._input_dtypes[model]
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        request.model_spec.name = model
        if version is not None:
            request.model_spec.version.value = version
        response = self._call(self._stub.GetModelMetadata, request, model, version)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        signature = signatures.signature_def.get(SIGNATURE)
        if signature is None or INPUT_NAME not in signature.inputs:
            raise ApiError(f"detector model {model} has no {SIGNATURE} signature with input {INPUT_NAME!r}")
        dtype = signature.inputs[INPUT_NAME].dtype
        if dtype not in _WIRE_DTYPES:
            raise ApiError(f"detector model {model} takes {types_pb2.DataType.Name(dtype)} input, not uint8 or float32")
        with self._lock:
            self._input_dtypes[model] = dtype
        return dtype

    def predict(self, crops: np.ndarray, model: str, version: int | None = None) -> Prediction:
        """Probability of fake for each crop [N, side, side, 3] uint8."""
        dtype = self.input_dtype(model, version)
        try:
            return self._predict(as_wire_dtype(crops, dtype), model, version)
        except InvalidArgument:
            fresh = self.input_dtype(model, version, refresh=True)
            if fresh == dtype:
                raise
            return self._predict(as_wire_dtype(crops, fresh), model, version)

    def _predict(self, crops: np.ndarray, model: str, version: int | None) -> Prediction:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = SIGNATURE
        if version is not None:
            request.model_spec.version.value = version
        request.inputs[INPUT_NAME].CopyFrom(to_tensor_proto(crops))
        request.output_filter.append(OUTPUT_NAME)
        response = self._call(self._stub.Predict, request, model, version)
        return Prediction(
            from_tensor_proto(response.outputs[OUTPUT_NAME]),
            response.model_spec.name,
            response.model_spec.version.value,
        )

    def _call(self, method, request, model: str, version: int | None):
        try:
            return method(request, timeout=self._timeout_s, metadata=outgoing_metadata())
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                wanted = f"{model} version {version}" if version is not None else model
                raise ResourceNotFound(f"detector model {wanted} is not served: {exc.details()}") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"the detector model server is unavailable ({code.name}); retry later") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"the detector refused the input: {exc.details()}") from None
            if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                raise Unavailable(f"the detector model server is at capacity; retry later ({exc.details()})") from None
            raise ApiError(f"the detector model server failed ({code.name}): {exc.details()}") from None
