"""A typed client for the platform's gateway: what other teams install and call.

    from dfp.client import Client
    with Client("gateway.example:50051") as client:
        media = client.upload("face.jpg")
        result = client.detect_image(media=media.name)
        print(result.verdict.label, result.verdict.max_fake_probability)

Every call carries a deadline (the client's `timeout_s`, or a per-call `timeout_s`). Calls that are
safe to repeat are retried by gRPC on UNAVAILABLE with exponential backoff; DetectVideo is made safe
to retry with a generated request_id. Any call the gateway turned away at capacity (UNAVAILABLE with
a RetryInfo: nothing of it was done) is sent again after the hinted delay, with backoff and jitter,
within the call's deadline. Failures raise `ApiError` with the gRPC status code and the server's
message.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message

from dfp.admission import retry_delay_s
from dfp.config import ClientSettings
from dfp.grpc_util import MAX_MESSAGE_BYTES
from dfp.v1 import (
    common_pb2,
    creation_pb2,
    creation_pb2_grpc,
    enhancement_pb2,
    enhancement_pb2_grpc,
    detection_pb2,
    detection_pb2_grpc,
    jobs_pb2,
    jobs_pb2_grpc,
    media_pb2,
    media_pb2_grpc,
)

CHUNK_BYTES = 1024 * 1024

# gRPC retries these on UNAVAILABLE; none of them changes state twice when repeated.
_RETRIED_METHODS = [
    {"service": "dfp.v1.MediaService", "method": "GetMedia"},
    {"service": "dfp.v1.MediaService", "method": "ListMedia"},
    {"service": "dfp.v1.MediaService", "method": "DownloadMedia"},
    {"service": "dfp.v1.DetectionService", "method": "DetectImage"},
    {"service": "dfp.v1.DetectionService", "method": "DetectVideo"},
    {"service": "dfp.v1.CreationService", "method": "AnimateImage"},
    {"service": "google.longrunning.Operations", "method": "GetOperation"},
    {"service": "google.longrunning.Operations", "method": "ListOperations"},
    {"service": "google.longrunning.Operations", "method": "WaitOperation"},
    {"service": "google.longrunning.Operations", "method": "CancelOperation"},
]
_SERVICE_CONFIG = json.dumps(
    {
        "methodConfig": [
            {
                "name": _RETRIED_METHODS,
                "retryPolicy": {
                    "maxAttempts": 4,
                    "initialBackoff": "0.2s",
                    "maxBackoff": "5s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


class ApiError(Exception):
    """A call failed: `code` is the grpc.StatusCode, `message` the server's explanation."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class OperationFailed(ApiError):
    """A long-running operation ended with an error."""


OVERLOAD_ATTEMPTS = 6
T = TypeVar("T")


def _with_overload_retries(attempt: Callable[[float], T], timeout: float) -> T:
    """Runs ``attempt(seconds left)`` again while the server answers at capacity, within ``timeout``;
    gRPC errors become `ApiError`."""
    deadline = time.monotonic() + timeout
    tries = 0
    while True:
        tries += 1
        try:
            return attempt(max(0.001, deadline - time.monotonic()))
        except grpc.RpcError as exc:
            hint = retry_delay_s(exc)
            delay = None if hint is None else max(hint, 0.05 * 2**tries) * random.uniform(1.0, 1.5)
            if delay is None or tries == OVERLOAD_ATTEMPTS or time.monotonic() + delay >= deadline:
                raise ApiError(exc.code(), exc.details() or "") from None
            time.sleep(delay)


def _call(fn, request, *, timeout: float, **kwargs):
    """``fn(request)``, or ``fn(request())`` when ``request`` is a function making a fresh request
    stream for each attempt."""
    return _with_overload_retries(
        lambda seconds: fn(request() if callable(request) else request, timeout=seconds, **kwargs), timeout)


def _paged(fetch: Callable[[str], Message], field: str) -> Iterator:
    """Every item of a paginated List method, fetching the next page while the token is not empty."""
    token = ""
    while True:
        page = fetch(token)
        yield from getattr(page, field)
        token = page.next_page_token
        if not token:
            return


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer {token}` to every call."""

    def __init__(self, token: str):
        self._header = ("authorization", f"Bearer {token}")

    def _details(self, details):
        return details._replace(metadata=[*(details.metadata or ()), self._header])

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def gateway_channel(target: str, token: str = "", tls_ca: str = "") -> grpc.Channel:
    """A channel to the gateway that sends ``token`` with every call; TLS when ``tls_ca`` is a CA
    certificate file (or "system" for the system's roots)."""
    options = [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", _SERVICE_CONFIG),
    ]
    if not tls_ca:
        channel = grpc.insecure_channel(target, options=options)
    else:
        roots = None if tls_ca == "system" else pathlib.Path(tls_ca).read_bytes()
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)
    return grpc.intercept_channel(channel, _BearerToken(token)) if token else channel


class Client:
    """The gateway's API. ``token`` (default DFP_TOKEN) authenticates every call; ``tls_ca`` (default
    DFP_TLS_CA) turns TLS on."""

    def __init__(self, target: str | None = None, timeout_s: float | None = None, token: str | None = None,
                 tls_ca: str | None = None):
        settings = ClientSettings.from_env()
        self.target = target or settings.gateway
        self.timeout_s = timeout_s or settings.timeout_s
        self._channel = gateway_channel(self.target, settings.token if token is None else token,
                                        settings.tls_ca if tls_ca is None else tls_ca)
        self._media = media_pb2_grpc.MediaServiceStub(self._channel)
        self._detection = detection_pb2_grpc.DetectionServiceStub(self._channel)
        self._creation = creation_pb2_grpc.CreationServiceStub(self._channel)
        self._enhancement = enhancement_pb2_grpc.EnhancementServiceStub(self._channel)
        self._operations = operations_pb2_grpc.OperationsStub(self._channel)
        self._jobs = jobs_pb2_grpc.JobServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _timeout(self, timeout_s: float | None) -> float:
        return timeout_s if timeout_s is not None else self.timeout_s

    # Media

    def upload(
        self,
        path: str | os.PathLike,
        *,
        display_name: str | None = None,
        retention_s: float = 0,
        labels: dict[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
        timeout_s: float | None = None,
    ) -> media_pb2.Media:
        """Uploads a file in chunks; `progress(bytes_sent)` is called after each chunk."""
        path = pathlib.Path(path)
        size = path.stat().st_size
        metadata = media_pb2.UploadMediaMetadata(
            display_name=display_name or path.name, sha256=sha256_file(path), size_bytes=size, labels=labels or {}
        )
        if retention_s:
            metadata.retention.CopyFrom(duration_pb2.Duration(seconds=int(retention_s)))

        def requests() -> Iterator[media_pb2.UploadMediaRequest]:
            yield media_pb2.UploadMediaRequest(metadata=metadata)
            sent = 0
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(CHUNK_BYTES), b""):
                    yield media_pb2.UploadMediaRequest(chunk=block)
                    sent += len(block)
                    if progress:
                        progress(sent)

        return _call(self._media.UploadMedia, requests, timeout=self._timeout(timeout_s))

    def download(self, name: str, out: str | os.PathLike, *, progress: Callable[[int], None] | None = None,
                 timeout_s: float | None = None) -> media_pb2.Media:
        """Writes the file to `out` (whole or not at all: through a temporary file, then renamed)."""
        out = pathlib.Path(out)
        partial = out.with_name(f".{out.name}.partial")
        try:
            return _with_overload_retries(lambda seconds: self._download_once(name, out, partial, seconds, progress),
                                          self._timeout(timeout_s))
        finally:
            partial.unlink(missing_ok=True)

    def _download_once(self, name: str, out: pathlib.Path, partial: pathlib.Path, timeout_s: float,
                       progress: Callable[[int], None] | None) -> media_pb2.Media:
        media = None
        received = 0
        with open(partial, "wb") as f:
            stream = self._media.DownloadMedia(media_pb2.DownloadMediaRequest(name=name), timeout=max(0.001, timeout_s))
            for message in stream:
                if message.WhichOneof("payload") == "media":
                    media = message.media
                else:
                    f.write(message.chunk)
                    received += len(message.chunk)
                    if progress:
                        progress(received)
        if media is None or received != media.size_bytes or sha256_file(partial) != media.sha256:
            raise ApiError(grpc.StatusCode.DATA_LOSS, f"download of {name} was incomplete or corrupted")
        os.replace(partial, out)
        return media

    def get_media(self, name: str, timeout_s: float | None = None) -> media_pb2.Media:
        return _call(self._media.GetMedia, media_pb2.GetMediaRequest(name=name), timeout=self._timeout(timeout_s))

    def list_media(self, page_size: int = 0, timeout_s: float | None = None) -> Iterator[media_pb2.Media]:
        """Every media of the team, fetching pages as it goes."""
        yield from _paged(lambda token: _call(
            self._media.ListMedia, media_pb2.ListMediaRequest(page_size=page_size, page_token=token),
            timeout=self._timeout(timeout_s)), "media")

    def delete_media(self, name: str, timeout_s: float | None = None) -> None:
        _call(self._media.DeleteMedia, media_pb2.DeleteMediaRequest(name=name), timeout=self._timeout(timeout_s))

    # Detection

    def detect_image(
        self,
        *,
        media: str | None = None,
        image_bytes: bytes | None = None,
        options: detection_pb2.DetectionOptions | None = None,
        timeout_s: float | None = None,
    ) -> detection_pb2.DetectImageResponse:
        """Scores a stored image (`media`) or a small image given inline (`image_bytes`)."""
        request = detection_pb2.DetectImageRequest(options=options)
        if media is not None:
            request.media = media
        if image_bytes is not None:
            request.image_bytes = image_bytes
        return _call(self._detection.DetectImage, request, timeout=self._timeout(timeout_s))

    def detect_video(
        self,
        media: str,
        *,
        options: detection_pb2.DetectionOptions | None = None,
        sampling: detection_pb2.FrameSampling | None = None,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> operations_pb2.Operation:
        """Queues a video detection job and returns its operation at once."""
        request = detection_pb2.DetectVideoRequest(
            media=media, options=options, sampling=sampling, request_id=request_id or str(uuid.uuid4())
        )
        return _call(self._detection.DetectVideo, request, timeout=self._timeout(timeout_s))

    def animate_image(
        self,
        source_media: str,
        driving_media: str,
        *,
        mode: str = "relative",
        model: str = "",
        no_face_crop: bool = False,
        return_crop: bool = False,
        best_initial_frame: bool = False,
        no_visible_mark: bool = False,
        plain: bool = False,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> operations_pb2.Operation:
        """Queues an animation job (FOMM) and returns its operation at once; ``plain`` runs the
        published path at the model's frame size instead of the full-resolution one."""
        modes = {"relative": creation_pb2.RELATIVE, "absolute": creation_pb2.ABSOLUTE}
        if mode not in modes:
            raise ValueError(f"mode must be relative or absolute, got {mode!r}")
        request = creation_pb2.AnimateImageRequest(
            source_media=source_media, driving_media=driving_media, mode=modes[mode],
            model=common_pb2.ModelSpec(name=model), no_face_crop=no_face_crop, return_crop=return_crop,
            best_initial_frame=best_initial_frame, no_visible_mark=no_visible_mark, plain=plain,
            request_id=request_id or str(uuid.uuid4()),
        )
        return _call(self._creation.AnimateImage, request, timeout=self._timeout(timeout_s))

    def swap_face(
        self,
        target_media: str,
        model: str,
        *,
        version: int | None = None,
        to_identity: str = "b",
        no_color_transfer: bool = False,
        seamless_clone: bool = False,
        no_visible_mark: bool = False,
        model_resolution: bool = False,
        no_skin_mask: bool = False,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> operations_pb2.Operation:
        """Queues a face swap job over a stored video and returns its operation at once."""
        spec = common_pb2.ModelSpec(name=model)
        if version is not None:
            spec.version.value = version
        request = creation_pb2.SwapFaceRequest(
            target_media=target_media, model=spec, to_identity=to_identity, no_color_transfer=no_color_transfer,
            seamless_clone=seamless_clone, no_visible_mark=no_visible_mark, model_resolution=model_resolution,
            no_skin_mask=no_skin_mask, request_id=request_id or str(uuid.uuid4()),
        )
        return _call(self._creation.SwapFace, request, timeout=self._timeout(timeout_s))

    def enhance(
        self,
        media: str,
        *,
        model: str = "esrgan-x4",
        scale: int = 4,
        no_visible_mark: bool = False,
        request_id: str | None = None,
        timeout_s: float | None = None,
    ) -> operations_pb2.Operation:
        """Queues a super-resolution job over a stored image or video and returns its operation at once."""
        request = enhancement_pb2.EnhanceRequest(media=media, model=model, scale=scale, no_visible_mark=no_visible_mark,
                                                 request_id=request_id or str(uuid.uuid4()))
        return _call(self._enhancement.Enhance, request, timeout=self._timeout(timeout_s))

    # Operations

    def get_operation(self, name: str, timeout_s: float | None = None) -> operations_pb2.Operation:
        return _call(self._operations.GetOperation, operations_pb2.GetOperationRequest(name=name),
                     timeout=self._timeout(timeout_s))

    def list_operations(self, page_size: int = 0, timeout_s: float | None = None) -> Iterator[operations_pb2.Operation]:
        yield from _paged(lambda token: _call(
            self._operations.ListOperations, operations_pb2.ListOperationsRequest(page_size=page_size, page_token=token),
            timeout=self._timeout(timeout_s)), "operations")

    def cancel_operation(self, name: str, timeout_s: float | None = None) -> None:
        _call(self._operations.CancelOperation, operations_pb2.CancelOperationRequest(name=name),
              timeout=self._timeout(timeout_s))

    def delete_operation(self, name: str, timeout_s: float | None = None) -> None:
        _call(self._operations.DeleteOperation, operations_pb2.DeleteOperationRequest(name=name),
              timeout=self._timeout(timeout_s))

    def watch_operation(self, name: str, timeout_s: float | None = None) -> Iterator[operations_pb2.Operation]:
        """The operation now, then at every change, until it is done."""
        stream = self._jobs.WatchOperation(jobs_pb2.WatchOperationRequest(name=name), timeout=timeout_s)
        try:
            yield from stream
        except grpc.RpcError as exc:
            raise ApiError(exc.code(), exc.details() or "") from None

    def wait_operation(self, name: str, timeout_s: float = 3600.0,
                       on_update: Callable[[operations_pb2.Operation], None] | None = None) -> operations_pb2.Operation:
        """Follows the operation until done (or `timeout_s`), calling `on_update` at every change."""
        deadline = time.monotonic() + timeout_s
        operation = None
        for operation in self.watch_operation(name, timeout_s=timeout_s):
            if on_update:
                on_update(operation)
        if operation is None or not operation.done:
            remaining = max(0.0, deadline - time.monotonic())
            raise ApiError(grpc.StatusCode.DEADLINE_EXCEEDED, f"{name} not done after {timeout_s - remaining:.0f} s")
        return operation


def job_metadata(operation: operations_pb2.Operation) -> jobs_pb2.JobMetadata:
    metadata = jobs_pb2.JobMetadata()
    operation.metadata.Unpack(metadata)
    return metadata


def operation_result(operation: operations_pb2.Operation, response_type: type[Message]) -> Message:
    """The response of a finished operation; raises OperationFailed when it ended in error."""
    if not operation.done:
        raise ValueError(f"{operation.name} is not done")
    if operation.HasField("error"):
        code = grpc.StatusCode.UNKNOWN
        for candidate in grpc.StatusCode:
            if candidate.value[0] == operation.error.code:
                code = candidate
        raise OperationFailed(code, operation.error.message)
    response = response_type()
    operation.response.Unpack(response)
    return response
