"""Authentication of every gateway call: an API token in the ``authorization`` metadata
(``Bearer dfp_...``), checked by a server interceptor before any servicer runs.

Only the health service answers without a token (probes and load balancers cannot hold one). The
token's team is what every servicer acts for (``TeamResolver``). Lookups are cached for
``cache_s`` seconds, so a revoked token stops working within that time.
"""

from __future__ import annotations

import threading
import time

import grpc

from dfp.grpc_util import behavior_field
from dfp.tokens import Principal, TokenStore
from gateway.errors import STORE_UNAVAILABLE, Unauthenticated, is_store_outage

OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
MAX_CACHED = 10_000
INVALID_TOKEN = "the API token is not valid: it is malformed, unknown or revoked"


def bearer_token(metadata) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str) and value.startswith("Bearer "):
            return value[len("Bearer "):].strip()
    return ""


class Authenticator:
    def __init__(self, tokens: TokenStore, cache_s: float = 10.0):
        self._tokens = tokens
        self._cache_s = cache_s
        self._cache: dict[str, tuple[Principal | None, float]] = {}
        self._lock = threading.Lock()

    def principal(self, metadata) -> Principal | None:
        token = bearer_token(metadata)
        if not token:
            return None
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(token)
        if cached is not None and cached[1] > now:
            return cached[0]
        principal = self._tokens.authenticate(token)
        with self._lock:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            self._cache[token] = (principal, now + self._cache_s)
        return principal


def refusal(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape as ``handler`` that ends the call with ``code``."""

    def abort(request_or_iterator, context):
        context.abort(code, message)

    return handler._replace(**{behavior_field(handler): abort})


class AuthInterceptor(grpc.ServerInterceptor):
    """Refuses with UNAUTHENTICATED every call but health checks that lacks a valid token."""

    def __init__(self, authenticator: Authenticator):
        self._authenticator = authenticator

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        metadata = handler_call_details.invocation_metadata
        if not bearer_token(metadata):
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED,
                           "this call needs an API token: send `authorization: Bearer dfp_...` (DFP_TOKEN for the "
                           "dfp CLI and client); an administrator creates one with `dfp admin token create`")
        try:
            principal = self._authenticator.principal(metadata)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            return refusal(handler, grpc.StatusCode.UNAVAILABLE,
                           f"cannot check the API token: {STORE_UNAVAILABLE}")
        if principal is None:
            return refusal(handler, grpc.StatusCode.UNAUTHENTICATED, INVALID_TOKEN)
        return handler


class TeamResolver:
    """The team a call acts for: its token's (the interceptor has already refused calls without one)."""

    def __init__(self, authenticator: Authenticator):
        self._authenticator = authenticator

    def __call__(self, context) -> str:
        principal = self._authenticator.principal(context.invocation_metadata())
        if principal is None:
            raise Unauthenticated(INVALID_TOKEN)
        return principal.team
