"""The gateway's client for the detector: TensorFlow Serving's PredictionService, official stubs.

The same code talks to the platform's own model server here and to the official tensorflow/serving
image in a cluster. Every call carries a deadline; failures map to the gateway's errors.
"""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np

from dfp.quiet_tensorflow import import_tensorflow

import_tensorflow()

from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dfp.grpc_util import MutualTls, service_channel
from dfp.observability import outgoing_metadata
from gateway.errors import ApiError, InvalidArgument, ResourceNotFound, Unavailable

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "fake_probability"


def to_tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
    """A float32 array as a TensorProto, its bytes in tensor_content (what TF Serving reads fastest)."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    shape = tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in array.shape])
    return tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_shape=shape, tensor_content=array.tobytes())


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

    def close(self) -> None:
        self._channel.close()

    def predict(self, crops: np.ndarray, model: str, version: int | None = None) -> Prediction:
        """Probability of fake for each crop [N, side, side, 3] float32 in [0, 1]."""
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model
        request.model_spec.signature_name = SIGNATURE
        if version is not None:
            request.model_spec.version.value = version
        request.inputs[INPUT_NAME].CopyFrom(to_tensor_proto(crops))
        request.output_filter.append(OUTPUT_NAME)
        try:
            response = self._stub.Predict(request, timeout=self._timeout_s, metadata=outgoing_metadata())
        except grpc.RpcError as exc:
            code = exc.code()
            if code == grpc.StatusCode.NOT_FOUND:
                wanted = f"{model} version {version}" if version is not None else model
                raise ResourceNotFound(f"detector model {wanted} is not served: {exc.details()}") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"the detector model server is unavailable ({code.name}); retry later") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"the detector refused the input: {exc.details()}") from None
            raise ApiError(f"the detector model server failed ({code.name}): {exc.details()}") from None
        return Prediction(
            from_tensor_proto(response.outputs[OUTPUT_NAME]),
            response.model_spec.name,
            response.model_spec.version.value,
        )
