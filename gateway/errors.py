"""Errors the gateway's logic raises, each bound to the gRPC status it is answered with.

Logic raises these; the servicers turn them into statuses at the boundary (see `abort_on_error`),
so a code path never answers OK with an error inside the payload.
"""

from __future__ import annotations

import functools
import logging

import grpc
import urllib3

from dfp import media
from dfp.ids import BadName
from dfp.storage import NotFound

log = logging.getLogger(__name__)


class ApiError(Exception):
    code = grpc.StatusCode.INTERNAL


class InvalidArgument(ApiError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class ResourceNotFound(ApiError):
    code = grpc.StatusCode.NOT_FOUND


class LimitExceeded(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class FailedPrecondition(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ApiError):
    code = grpc.StatusCode.UNAVAILABLE


class Unauthenticated(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED


STORE_UNAVAILABLE = "the object store is unavailable; nothing was changed by this call; retry later"


def is_store_outage(exc: Exception) -> bool:
    """The object store could not be reached (connection refused, timed out, reset)."""
    return isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError))


def status_for(exc: Exception) -> tuple[grpc.StatusCode, str]:
    """The status and message for an exception raised while serving a call."""
    if isinstance(exc, ApiError):
        return exc.code, str(exc)
    if isinstance(exc, media.MediaTooLarge):
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc)
    if isinstance(exc, (media.InvalidMedia, BadName)):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, NotFound):
        return grpc.StatusCode.NOT_FOUND, "not found"
    if is_store_outage(exc):
        return grpc.StatusCode.UNAVAILABLE, STORE_UNAVAILABLE
    log.exception("internal error", exc_info=exc)
    return grpc.StatusCode.INTERNAL, "internal error; the gateway log has the details"


def _abort(context, exc: Exception):
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK:
        raise exc  # context.abort already ran deeper down: keep its status
    code, message = status_for(exc)
    context.abort(code, message)


def abort_on_error(method):
    """Wraps a unary or client-streaming servicer method: exceptions become gRPC statuses."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except Exception as exc:
            _abort(context, exc)

    return wrapper


def abort_on_error_stream(method):
    """Like abort_on_error, for server-streaming methods (generators)."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            yield from method(self, request, context)
        except Exception as exc:
            _abort(context, exc)

    return wrapper
