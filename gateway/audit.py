"""Auditing every authenticated gateway call that creates, reads media, changes or runs something.

A server interceptor (inside the authentication one) wraps each handler: when the call ends it notes
the caller's token, the RPC, the resource names in the request and response (``media/...``,
``operations/...``, ``model:...``) and the status code, and hands the event to a background writer,
so no call waits on the object store for its audit record. The writer gathers events for
``LINGER_S`` after the first (or until ``MAX_BATCH``) and writes them as one object per team: under
load one object store write per many events instead of one per call (each write costs the gateway
a millisecond or two of the GIL, which the calls need). Read-only metadata calls (get, list,
wait, watch) are not recorded; every other RPC, including ones added later, is.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import grpc
from google.protobuf.message import Message

from dfp.audit import AuditLog, event as audit_event
from gateway.auth import Authenticator

log = logging.getLogger(__name__)

UNAUDITED = {
    "/dfp.v1.MediaService/GetMedia", "/dfp.v1.MediaService/ListMedia",
    "/google.longrunning.Operations/GetOperation", "/google.longrunning.Operations/ListOperations",
    "/google.longrunning.Operations/WaitOperation", "/dfp.v1.JobService/WatchOperation",
}
UNAUDITED_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
RESOURCE_PREFIXES = ("media/", "operations/")
WRITE_ATTEMPTS = 5  # over about 15 s, so a short object store outage loses no events
MAX_BATCH = 500
LINGER_S = 0.5


def resources(message) -> list[str]:
    """Resource names a request or response carries in its top-level fields (and a model's name)."""
    if not isinstance(message, Message):
        return []
    found = []
    for field, value in message.ListFields():
        if isinstance(value, str) and value.startswith(RESOURCE_PREFIXES):
            found.append(value)
        elif field.name == "model" and isinstance(value, Message) and getattr(value, "name", ""):
            found.append(f"model:{value.name}")
    return found


class AuditWriter:
    """Writes events on a background thread; ``close`` drains what is queued."""

    def __init__(self, audit_log: AuditLog, capacity: int = 10_000):
        self._log = audit_log
        self._queue: queue.Queue = queue.Queue(maxsize=capacity)
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def submit(self, **fields) -> None:
        """Queues an event, stamped now (the time of the call, not of the write)."""
        recorded = audit_event(**fields)
        try:
            self._queue.put(recorded, timeout=1.0)
        except queue.Full:
            log.error("audit queue full; event not recorded: %s", recorded)

    def _run(self) -> None:
        closing = False
        while not closing:
            batch = [self._queue.get()]
            until = time.monotonic() + LINGER_S
            while len(batch) < MAX_BATCH and batch[-1] is not None:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, until - time.monotonic())))
                except queue.Empty:
                    break
            closing = batch[-1] is None  # close() queues None last
            if closing:
                batch.pop()
            groups: dict[tuple[str, str], list[dict]] = {}
            for item in batch:
                groups.setdefault((item["team"], item["time"][:10]), []).append(item)
            for group in groups.values():
                self._write(group)

    def _write(self, group: list[dict]) -> None:
        for attempt in range(WRITE_ATTEMPTS):
            try:
                self._log.record_events(group)
                return
            except Exception:
                if attempt == WRITE_ATTEMPTS - 1:
                    log.exception("could not write %d audit events, the first %s", len(group), group[0])
                else:
                    time.sleep(2.0 ** attempt)

    def close(self, timeout_s: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout_s)


class AuditInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, writer: AuditWriter):
        self._authenticator = authenticator
        self._writer = writer

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method in UNAUDITED or method.startswith(UNAUDITED_PREFIXES):
            return handler
        if handler.request_streaming and handler.response_streaming:
            return handler._replace(stream_stream=self._streaming(handler.stream_stream, method))
        if handler.response_streaming:
            return handler._replace(unary_stream=self._streaming(handler.unary_stream, method))
        if handler.request_streaming:
            return handler._replace(stream_unary=self._unary(handler.stream_unary, method))
        return handler._replace(unary_unary=self._unary(handler.unary_unary, method))

    def _caller(self, context, method: str):
        """Who calls, read when the call starts (a cache hit: authentication has just looked)."""
        try:
            return self._authenticator.principal(context.invocation_metadata())
        except Exception:
            log.exception("audit: cannot tell who made a %s call; it will not be recorded", method)
            return None

    def _note(self, principal, method: str, named: list[str], outcome: str) -> None:
        if principal is None:
            return
        self._writer.submit(team=principal.team, token_id=principal.token_id, token_name=principal.name,
                            action=method.rsplit("/", 1)[1], resources=list(dict.fromkeys(named)), outcome=outcome)

    @staticmethod
    def _outcome(context) -> str:
        code = context.code()
        return code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN"

    def _unary(self, behavior, method: str):
        def audited(request, context):
            principal = self._caller(context, method)
            named = resources(request)
            try:
                response = behavior(request, context)
            except BaseException:
                self._note(principal, method, named, self._outcome(context))
                raise
            self._note(principal, method, named + resources(response), "OK")
            return response

        return audited

    def _streaming(self, behavior, method: str):
        def audited(request, context):
            principal = self._caller(context, method)
            named = resources(request)
            try:
                yield from behavior(request, context)
            except BaseException:
                self._note(principal, method, named, self._outcome(context))
                raise
            self._note(principal, method, named, "OK")

        return audited
