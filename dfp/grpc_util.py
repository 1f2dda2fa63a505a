"""gRPC plumbing shared by every server and client: message limits, health, graceful shutdown, and the
mutual TLS the platform's services may speak among themselves."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import signal
import threading
from collections.abc import Callable, Iterable
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

log = logging.getLogger(__name__)

# A 32x256x256x3 float32 batch is 25 MB, over gRPC's 4 MB default; both ends raise the limit.
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
]


def behavior_field(handler: grpc.RpcMethodHandler) -> str:
    """The name of the handler's behavior function, by its streaming shape (``unary_unary``...)."""
    return {(False, False): "unary_unary", (False, True): "unary_stream", (True, False): "stream_unary",
            (True, True): "stream_stream"}[(handler.request_streaming, handler.response_streaming)]


# Model server calls are pure functions of their input, so UNAVAILABLE (a restarting or briefly
# overloaded server) is retried by gRPC itself, with exponential backoff and jitter.
_RETRY_UNAVAILABLE = json.dumps({"methodConfig": [{
    "name": [{}],
    "retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.1s", "maxBackoff": "1s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]},
}]})


@dataclasses.dataclass(frozen=True)
class MutualTls:
    """Mutual TLS between the platform's services: the CA every service trusts, and this process's
    certificate (chain) and key, which it shows as a server and as a client alike."""

    ca: bytes
    certificate: bytes
    key: bytes

    @classmethod
    def from_env(cls) -> "MutualTls | None":
        """From the PEM files DFP_MTLS_CA, DFP_MTLS_CERT and DFP_MTLS_KEY; None when none is set."""
        paths = [os.environ.get(name, "") for name in ("DFP_MTLS_CA", "DFP_MTLS_CERT", "DFP_MTLS_KEY")]
        if not any(paths):
            return None
        if not all(paths):
            raise ValueError("set all of DFP_MTLS_CA, DFP_MTLS_CERT and DFP_MTLS_KEY for mutual TLS, or none")
        return cls.from_files(*paths)

    @classmethod
    def from_files(cls, ca: str | os.PathLike, certificate: str | os.PathLike, key: str | os.PathLike) -> "MutualTls":
        """From PEM files: the CA, this process's certificate (chain) and its key."""
        return cls(*(pathlib.Path(path).read_bytes() for path in (ca, certificate, key)))


def service_channel(target: str, retry_unavailable: bool = False, mtls: MutualTls | None = None) -> grpc.Channel:
    """A channel to a service of the platform, plaintext or, with ``mtls``, TLS that checks the server
    against the platform's CA and shows this process's certificate. With ``retry_unavailable``, calls
    are retried on UNAVAILABLE and the channel reconnects within 2 s of the server coming back (gRPC's
    default reconnect backoff grows to two minutes)."""
    options = list(CHANNEL_OPTIONS)
    if retry_unavailable:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", _RETRY_UNAVAILABLE),
                    ("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                    ("grpc.max_reconnect_backoff_ms", 2000)]
    if mtls is None:
        return grpc.insecure_channel(target, options=options)
    credentials = grpc.ssl_channel_credentials(root_certificates=mtls.ca, private_key=mtls.key,
                                               certificate_chain=mtls.certificate)
    return grpc.secure_channel(target, credentials, options=options)


class Server:
    """A gRPC server with health checking and reflection that drains in-flight calls on SIGTERM.

    `services` are (add_servicer_to_server, servicer, full service name) triples; each name is
    reported SERVING on the health service once `start` returns, and NOT_SERVING while draining.
    `interceptors` see every call first; with `tls` (certificate chain PEM, private key PEM) the port
    speaks TLS only; with `mtls` it speaks TLS only and admits only clients whose certificate the
    platform's CA signed. `health_address`, when set, serves the health service alone in plaintext
    there, for probes that cannot speak TLS (Kubernetes' gRPC probes).
    """

    def __init__(
        self,
        address: str,
        services: Iterable[tuple[Callable, object, str]],
        max_workers: int = 16,
        grace_s: float = 10.0,
        interceptors: Iterable[grpc.ServerInterceptor] = (),
        tls: tuple[bytes, bytes] | None = None,
        health_address: str = "",
        mtls: MutualTls | None = None,
    ):
        if tls is not None and mtls is not None:
            raise ValueError("a port speaks either TLS to any client or mutual TLS, not both")
        # Calls past twice the workers are refused by gRPC itself (RESOURCE_EXHAUSTED) rather than
        # queued without bound in the executor.
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=CHANNEL_OPTIONS,
                                   interceptors=list(interceptors), maximum_concurrent_rpcs=2 * max_workers)
        self._health = health.HealthServicer()
        self._names = []
        for add, servicer, name in services:
            add(servicer, self._server)
            self._names.append(name)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        from grpc_reflection.v1alpha import reflection

        reflection.enable_server_reflection(
            [*self._names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
            self._server,
        )
        if mtls is not None:
            credentials = grpc.ssl_server_credentials([(mtls.key, mtls.certificate)], root_certificates=mtls.ca,
                                                      require_client_auth=True)
            self.port = self._server.add_secure_port(address, credentials)
        elif tls is not None:
            self.port = self._server.add_secure_port(address, grpc.ssl_server_credentials([(tls[1], tls[0])]))
        else:
            self.port = self._server.add_insecure_port(address)
        if self.port == 0:
            raise OSError(f"cannot listen on {address}")
        self._health_server = None
        if health_address:
            self._health_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_server)
            if self._health_server.add_insecure_port(health_address) == 0:
                raise OSError(f"cannot listen on {health_address}")
        self._grace_s = grace_s
        self._stopped = threading.Event()

    def start(self) -> None:
        self._server.start()
        if self._health_server is not None:
            self._health_server.start()
        for name in ["", *self._names]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)

    def stop(self) -> None:
        """Reports NOT_SERVING, refuses new calls, lets running ones finish within the grace period."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._health.enter_graceful_shutdown()
        self._server.stop(self._grace_s).wait()
        if self._health_server is not None:
            self._health_server.stop(0)


def wait_for_signal() -> None:
    """Blocks until SIGTERM or SIGINT: the point where a server's main starts draining."""
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    stopped.wait()
