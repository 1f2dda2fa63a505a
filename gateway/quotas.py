"""Enforcing team quotas at the gateway: request rate (an interceptor), unfinished jobs and stored
bytes (asked by the job and media stores). Over a quota, a call gets RESOURCE_EXHAUSTED with a
message that says which quota and, for the rate, a ``retry-after-s`` trailer.

The rate is a token bucket per team in each gateway process: with N replicas behind a balancer a
team may reach up to N times its rate; the job and storage quotas are counted in the object store
and hold across replicas (checked when work is admitted, so two calls at the same instant may pass
together)."""

from __future__ import annotations

import logging
import math
import threading
import time

import grpc

from dfp.config import Quota
from dfp.grpc_util import behavior_field
from dfp.quotas import QuotaStore
from gateway.auth import OPEN_PREFIXES, Authenticator
from gateway.errors import STORE_UNAVAILABLE, is_store_outage

log = logging.getLogger(__name__)


class TeamQuotas:
    """A team's quota, re-read from the admin bucket at most every ``cache_s`` seconds."""

    def __init__(self, quotas: QuotaStore, cache_s: float = 10.0):
        self._quotas = quotas
        self._cache_s = cache_s
        self._cache: dict[str, tuple[Quota, float]] = {}
        self._lock = threading.Lock()

    def __call__(self, team: str) -> Quota:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(team)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            quota = self._quotas.get(team)
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            log.warning("object store unavailable; team %s gets %s quotas until it is back",
                        team, "its last known" if cached else "the default")
            return cached[0] if cached else self._quotas.defaults
        with self._lock:
            self._cache[team] = (quota, now + self._cache_s)
        return quota


class RateLimiter:
    """Token buckets per team: a bucket holds a minute's worth of requests and refills continuously."""

    def __init__(self, quota_of: TeamQuotas):
        self._quota_of = quota_of
        self._buckets: dict[str, tuple[float, float]] = {}  # team -> (tokens, last refill time)
        self._lock = threading.Lock()

    def wait_needed(self, team: str) -> float:
        """0 if the call may go ahead (and takes a token), else the seconds until one is free."""
        rate = self._quota_of(team).requests_per_minute / 60.0
        if rate <= 0:
            return math.inf
        capacity = max(1.0, rate * 60.0)
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(team, (capacity, now))
            tokens = min(capacity, tokens + (now - last) * rate)
            if tokens >= 1.0:
                self._buckets[team] = (tokens - 1.0, now)
                return 0.0
            self._buckets[team] = (tokens, now)
        return (1.0 - tokens) / rate


class RateLimitInterceptor(grpc.ServerInterceptor):
    """Checks the caller's team against its rate when the call starts (after authentication has
    accepted its token, so the lookup is a cache hit)."""

    def __init__(self, authenticator: Authenticator, limiter: RateLimiter):
        self._authenticator = authenticator
        self._limiter = limiter

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(OPEN_PREFIXES):
            return handler
        field = behavior_field(handler)
        behavior = getattr(handler, field)

        def admitted(request, context):
            self._admit(context)
            return behavior(request, context)

        return handler._replace(**{field: admitted})

    def _admit(self, context) -> None:
        try:
            principal = self._authenticator.principal(context.invocation_metadata())
        except Exception as exc:
            if not is_store_outage(exc):
                raise
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot check the API token: {STORE_UNAVAILABLE}")
        if principal is None:
            return
        wait = self._limiter.wait_needed(principal.team)
        if wait == 0.0:
            return
        if not math.isfinite(wait):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"team {principal.team} has a request rate quota of 0; ask an administrator")
        context.set_trailing_metadata((("retry-after-s", f"{wait:.1f}"),))
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                      f"team {principal.team} is over its request rate quota; retry in {wait:.1f} s")
