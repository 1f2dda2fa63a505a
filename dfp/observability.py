"""Logs and metrics shared by the services.

Logs are one JSON object per line (time, level, logger, message, request_id, and the exception when
there is one), so a log pipeline can index them; the request id of the call being served rides in a
context variable, set by the gateway from the caller's ``x-request-id`` (or a new one) and sent on to
the model servers in the same metadata key. Metrics are Prometheus's, served over HTTP on a
service's metrics address (DFP_METRICS_LISTEN, empty: off)."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import secrets
import time

import grpc

from dfp.grpc_util import behavior_field

REQUEST_ID_KEY = "x-request-id"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")


def new_request_id() -> str:
    return secrets.token_hex(8)


def outgoing_metadata() -> tuple[tuple[str, str], ...]:
    """Metadata that carries the current request id to the next service."""
    current = request_id.get()
    return ((REQUEST_ID_KEY, current),) if current else ()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        current = request_id.get()
        if current:
            entry["request_id"] = current
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)


def start_metrics_server(address: str) -> int:
    """Serves /metrics on ``host:port`` (port 0 picks one); returns the port, or 0 when ``address`` is empty."""
    if not address:
        return 0
    from prometheus_client import start_http_server

    host, _, port = address.rpartition(":")
    server, _ = start_http_server(int(port), addr=host or "0.0.0.0")
    return server.server_port


def _failed_code(context) -> str:
    """The status of a call whose handler raised: the one it aborted with, else UNKNOWN."""
    code = context.code()
    return code.name if isinstance(code, grpc.StatusCode) and code != grpc.StatusCode.OK else "UNKNOWN"


_CALL_METRICS: dict[str, tuple] = {}


def _call_metrics(service: str) -> tuple:
    """The service's call counter and latency histogram, registered once per process."""
    from prometheus_client import Counter, Histogram

    if service not in _CALL_METRICS:
        _CALL_METRICS[service] = (
            Counter(f"dfp_{service}_requests", "Calls answered, by method and status code", ["method", "code"]),
            Histogram(f"dfp_{service}_request_seconds", "Time to answer a call (streams: to the last message)",
                      ["method"], buckets=LATENCY_BUCKETS),
        )
    return _CALL_METRICS[service]


class CallMetricsInterceptor(grpc.ServerInterceptor):
    """Times and counts every call (``dfp_{service}_requests_total`` by method and status code,
    ``dfp_{service}_request_seconds``) and binds its request id: the caller's ``x-request-id``, or a
    new one, sent back in the initial metadata. Install it outermost."""

    def __init__(self, service: str):
        self._requests, self._latency = _call_metrics(service)

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        given = dict(handler_call_details.invocation_metadata or ()).get(REQUEST_ID_KEY, "")
        field = behavior_field(handler)
        behavior = getattr(handler, field)

        def start(context) -> tuple[contextvars.Token, float]:
            rid = given if given and len(given) <= 64 and given.isprintable() else new_request_id()
            context.send_initial_metadata(((REQUEST_ID_KEY, rid),))
            return request_id.set(rid), time.perf_counter()

        def finish(context, token, started: float, code: str) -> None:
            self._latency.labels(method).observe(time.perf_counter() - started)
            self._requests.labels(method, code).inc()
            request_id.reset(token)

        if handler.response_streaming:
            def measured(request, context):
                token, started = start(context)
                code = "OK"
                try:
                    yield from behavior(request, context)
                except BaseException:
                    code = _failed_code(context)
                    raise
                finally:
                    finish(context, token, started, code)
        else:
            def measured(request, context):
                token, started = start(context)
                code = "OK"
                try:
                    return behavior(request, context)
                except BaseException:
                    code = _failed_code(context)
                    raise
                finally:
                    finish(context, token, started, code)

        return handler._replace(**{field: measured})
