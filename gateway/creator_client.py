"""The gateway's client for the creator models: TorchServe's gRPC inference API.

``TorchServeAnimator`` has the shape the animation pipeline expects (``frame_size``, ``prepare``,
``animate_batch``) and ``TorchServeSwapper`` the shape the swap merge expects (``resolution``,
``swap``), so the gateway runs the same framing and blending code as the offline CLI while the
networks run under TorchServe. Every call carries a deadline; failures map to the gateway's errors."""

from __future__ import annotations

import dataclasses

import grpc
import numpy as np

from dfp.grpc_util import service_channel
from dfp.observability import outgoing_metadata
from dfp.torchserve import inference_pb2, inference_pb2_grpc
from gateway.errors import ApiError, InvalidArgument, ResourceNotFound, Unavailable
from services.creator.pipelines.animate_media import to_uint8
from services.creator.serving import protocol


@dataclasses.dataclass
class _Clip:
    source: np.ndarray
    initial: np.ndarray
    mode: str
    full_resolution: bool  # the source is a square crop at its working side, animated at that size


@dataclasses.dataclass
class RemoteBatch:
    prediction: np.ndarray  # (B,S,S,3) float32 in [0,1]


class TorchServeAnimator:
    """One animation model under TorchServe, seen as a batch animator."""

    def __init__(self, client: "CreatorClient", model: str, version: str = "", frame_size: int = 256,
                 full_resolution: bool = False):
        self._client = client
        self.model = model
        self.version = version
        self.frame_size = frame_size
        self.full_resolution = full_resolution

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray, mode: str = "relative") -> _Clip:
        return _Clip(to_uint8(source), to_uint8(initial_driving), mode, self.full_resolution)

    def animate_batch(self, clip: _Clip, driving: np.ndarray) -> RemoteBatch:
        body = protocol.encode_request(protocol.AnimationRequest(clip.source, clip.initial, to_uint8(driving), clip.mode,
                                                                 clip.full_resolution))
        prediction = protocol.decode_response(self._client.predict(self.model, self.version, body))
        return RemoteBatch(prediction.astype(np.float32) / 255.0)


class TorchServeSwapper:
    """One version of a face swap model under TorchServe, seen as a batch face swapper."""

    def __init__(self, client: "CreatorClient", model: str, version: int, resolution: int):
        self._client = client
        self.model = model
        self.version = version
        self.resolution = resolution

    def swap(self, aligned: np.ndarray, to_identity: str) -> tuple[np.ndarray, np.ndarray]:
        faces, masks = [], []
        for start in range(0, len(aligned), protocol.MAX_BATCH):
            body = protocol.encode_swap_request(protocol.SwapRequest(aligned[start:start + protocol.MAX_BATCH],
                                                                     to_identity))
            try:
                answer = self._client.predict(self.model, str(self.version), body, what="face swap")
            except ResourceNotFound:
                # The registry has this version, so the creator has not loaded it yet, or refused it.
                raise Unavailable(f"face swap model {self.model} version {self.version} is not loaded by the "
                                  "creator service yet (it loads published versions within its poll interval; "
                                  "a version it refuses is named in its log); retry later") from None
            batch_faces, batch_masks = protocol.decode_swap_response(answer)
            faces.append(batch_faces)
            masks.append(batch_masks.astype(np.float32) / 255.0)
        return np.concatenate(faces), np.concatenate(masks)


class CreatorClient:
    def __init__(self, target: str, timeout_s: float = 120.0):
        # TorchServe verifies no client certificate; only its NetworkPolicy keeps other callers out.
        self._channel = service_channel(target, retry_unavailable=True)
        self._stub = inference_pb2_grpc.InferenceAPIsServiceStub(self._channel)
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def predict(self, model: str, version: str, body: bytes, what: str = "animation") -> bytes:
        request = inference_pb2.PredictionsRequest(model_name=model, model_version=version, input={"body": body})
        try:
            return self._stub.Predictions(request, timeout=self._timeout_s, metadata=outgoing_metadata()).prediction
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""
            if "Model not found" in details or "Model version not found" in details:
                wanted = f"{model} version {version}" if version else model
                raise ResourceNotFound(f"{what} model {wanted} is not served: {details}") from None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise Unavailable(f"the {what} model server is unavailable ({code.name}); retry later") from None
            if code == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidArgument(f"the {what} model refused the input: {details}") from None
            if "Worker died" in details:
                # TorchServe answers calls in flight on a stopping or crashed worker with INTERNAL.
                raise Unavailable(f"the {what} model's worker stopped (server restarting or worker crashed); "
                                  "retry later") from None
            raise ApiError(f"the {what} model failed ({code.name}): {details}") from None
