"""The gateway's client for the enhancer service (dfp.enhancer.v1), with its errors mapped to the gateway's."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from dfp.enhancer.v1 import enhancer_pb2, enhancer_pb2_grpc
from dfp.grpc_util import MutualTls, service_channel
from dfp.observability import outgoing_metadata
from gateway.errors import ApiError, FailedPrecondition, InvalidArgument, LimitExceeded, ResourceNotFound, Unavailable


class EnhancerClient:
    def __init__(self, target: str, timeout_s: float = 3600.0, mtls: MutualTls | None = None):
        self._channel = service_channel(target, retry_unavailable=True, mtls=mtls)
        self._stub = enhancer_pb2_grpc.EnhancerServiceStub(self._channel)
        self._timeout_s = timeout_s

    def close(self) -> None:
        self._channel.close()

    def enhance(self, request: enhancer_pb2.EnhanceRequest,
                progress: Callable[[int, int], None]) -> enhancer_pb2.EnhanceResult:
        """Runs one enhancement, reporting each progress message; returns what was written."""
        stream = self._stub.Enhance(request, timeout=self._timeout_s, metadata=outgoing_metadata())
        try:
            for update in stream:
                if update.done:
                    return update.result
                progress(update.frames_done, update.frames_total)
        except grpc.RpcError as exc:
            raise _translate(exc) from None
        except BaseException:
            # The job stops (cancelled, lease lost): stop the enhancer's work too.
            stream.cancel()
            raise
        raise Unavailable("the enhancer ended its stream without a result; retry later")


def _translate(exc: grpc.RpcError) -> ApiError:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument(details)
    if code == grpc.StatusCode.NOT_FOUND:
        return ResourceNotFound(details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return LimitExceeded(details)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(f"the enhancer service is not set up: {details}")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED):
        return Unavailable(f"the enhancer service is unavailable ({code.name}); retry later")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return Unavailable("the enhancement took longer than DFP_ENHANCER_TIMEOUT_S; use a smaller input or scale")
    return ApiError(f"the enhancer failed ({code.name}): {details}")
