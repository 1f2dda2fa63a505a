"""Admission control for a gRPC server: a bounded number of calls run, a bounded queue waits.

On a few cores, more calls running at once do not finish more work: they share the cores, the GIL
and the math thread pools, and every one of them gets slower (with 32 clients the gateway did half
of one client's work). So at most ``max_active`` calls run; the next ones wait in a queue of at most
``max_queued``, each for at most ``max_wait_s`` (or its own deadline, whichever comes first). A call
that finds the queue full, or waits too long, is answered UNAVAILABLE at once, before any of its
work is done, with a retry hint: ``grpc-retry-pushback-ms`` (which gRPC's own retry policy honours)
and a google.rpc.RetryInfo in the status details (what `dfp.client` reads for the calls gRPC does
not retry itself). Health checks and reflection are never queued.
"""

from __future__ import annotations

import collections
import logging
import threading
import time

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from prometheus_client import Counter, Gauge

from dfp.grpc_util import behavior_field

log = logging.getLogger(__name__)

EXEMPT_PREFIXES = ("/grpc.health.v1.", "/grpc.reflection.")
STATUS_DETAILS_KEY = "grpc-status-details-bin"
PUSHBACK_KEY = "grpc-retry-pushback-ms"

REJECTED = Counter("dfp_admission_rejected_total", "Calls answered UNAVAILABLE because the server was at capacity",
                   ["server", "reason"])
WAITING = Gauge("dfp_admission_waiting", "Calls waiting for a slot", ["server"])
ACTIVE = Gauge("dfp_admission_active", "Calls running", ["server"])


class Overloaded(Exception):
    def __init__(self, message: str, retry_after_s: float):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class _Waiter:
    """One queued call: the event its thread sleeps on, set when a slot is handed to it."""

    __slots__ = ("event", "granted")

    def __init__(self):
        self.event = threading.Event()
        self.granted = False


class AdmissionQueue:
    """At most ``max_active`` holders at once; FIFO-fair waiting for at most ``max_queued`` others.

    A released slot is handed straight to the oldest waiter, whose own event is set: one release
    wakes one thread. (Waking every waiter to let the oldest win, as a shared condition does, cost
    a thread switch and a GIL hand-off per waiter per call: at 64 clients, 48 wake-ups per call, and
    throughput fell past 32 clients.)"""

    def __init__(self, max_active: int, max_queued: int, max_wait_s: float, name: str = "server"):
        if max_active < 1:
            raise ValueError("max_active must be at least 1")
        self.max_active, self.max_queued, self.max_wait_s = max_active, max_queued, max_wait_s
        self._name = name
        self._lock = threading.Lock()
        self._active = 0
        self._waiters: collections.deque[_Waiter] = collections.deque()  # oldest first
        self._service_s = 0.05  # a running mean of how long one call holds its slot

    def retry_after_s(self) -> float:
        """About how long the calls ahead need: the queue's length in rounds of ``max_active`` calls."""
        rounds = (len(self._waiters) + self.max_active) / self.max_active
        return min(5.0, max(0.05, rounds * self._service_s))

    def acquire(self, wait_s: float) -> float:
        """Waits for a slot for at most ``wait_s``; returns when the slot was taken (monotonic)."""
        with self._lock:
            if self._active < self.max_active and not self._waiters:
                self._active += 1
                ACTIVE.labels(self._name).set(self._active)
                return time.monotonic()
            if len(self._waiters) >= self.max_queued:
                REJECTED.labels(self._name, "queue full").inc()
                raise Overloaded(f"at capacity: {self._active} calls running and {len(self._waiters)} waiting",
                                 self.retry_after_s())
            waiter = _Waiter()
            self._waiters.append(waiter)
            WAITING.labels(self._name).set(len(self._waiters))
        waiter.event.wait(max(0.0, wait_s))
        with self._lock:
            # A slot handed over between the timeout and this lock is still taken.
            if waiter.granted:
                return time.monotonic()
            self._waiters.remove(waiter)
            WAITING.labels(self._name).set(len(self._waiters))
            REJECTED.labels(self._name, "waited too long").inc()
            raise Overloaded(f"at capacity: waited {wait_s:.1f} s behind {self._active} running calls",
                             self.retry_after_s())

    def release(self, admitted_at: float) -> None:
        with self._lock:
            self._service_s = 0.9 * self._service_s + 0.1 * (time.monotonic() - admitted_at)
            if self._waiters:  # the slot passes to the oldest waiter; the active count stays
                waiter = self._waiters.popleft()
                WAITING.labels(self._name).set(len(self._waiters))
                waiter.granted = True
                waiter.event.set()
                return
            self._active -= 1
            ACTIVE.labels(self._name).set(self._active)


def overload_status(message: str, retry_after_s: float) -> tuple[tuple[str, bytes | str], ...]:
    """Trailing metadata for UNAVAILABLE with a retry hint, both the gRPC and the Google API way."""
    delay = duration_pb2.Duration()
    delay.FromMilliseconds(max(1, int(retry_after_s * 1000)))
    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    status = status_pb2.Status(code=code_pb2.UNAVAILABLE, message=message, details=[detail])
    return ((STATUS_DETAILS_KEY, status.SerializeToString()), (PUSHBACK_KEY, str(max(1, int(retry_after_s * 1000)))))


def retry_delay_s(error: grpc.RpcError) -> float | None:
    """The server's retry hint on an UNAVAILABLE answer from admission control; None otherwise."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                info = error_details_pb2.RetryInfo()
                if detail.Unpack(info):
                    return info.retry_delay.ToMilliseconds() / 1000.0
    return None


class AdmissionInterceptor(grpc.ServerInterceptor):
    """Runs every call (health and reflection aside) through an `AdmissionQueue`."""

    def __init__(self, queue: AdmissionQueue, service_name: str):
        self._queue = queue
        self._service_name = service_name

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(EXEMPT_PREFIXES):
            return handler
        field = behavior_field(handler)
        behavior = getattr(handler, field)
        if handler.response_streaming:
            def admitted(request, context):  # the slot is held until the last message is sent
                admitted_at = self._admit(context)
                try:
                    yield from behavior(request, context)
                finally:
                    self._queue.release(admitted_at)
        else:
            def admitted(request, context):
                admitted_at = self._admit(context)
                try:
                    return behavior(request, context)
                finally:
                    self._queue.release(admitted_at)

        return handler._replace(**{field: admitted})

    def _admit(self, context) -> float:
        remaining = context.time_remaining()
        wait_s = self._queue.max_wait_s if remaining is None else min(self._queue.max_wait_s, remaining * 0.5)
        try:
            return self._queue.acquire(wait_s)
        except Overloaded as exc:
            message = f"the {self._service_name} is {exc}; retry in {exc.retry_after_s * 1000:.0f} ms"
            context.set_trailing_metadata(overload_status(message, exc.retry_after_s))
            context.abort(grpc.StatusCode.UNAVAILABLE, message)
