"""The platform on one machine: S3 server, detector model server, the creator service (TorchServe
with the animation model and the registry's face swap models), the enhancer service (weights from
`dfp enhancer build-weights`), and the gateway as local processes.

Used by `make demo`, the integration tests and the benchmarks, so all of them run the real servers the
same way. Each process gets free ports on 127.0.0.1 and its logs in the stack's folder; `stop`
ends them all (also when start fails half-way). The gateway signs generated media with a C2PA
identity made for the stack (trust anchor in DFP_C2PA_TRUST_ANCHORS of `env()`), and calls the model
server and the enhancer over mutual TLS with certificates made for the stack (`mtls_dir`).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp.content_credentials import create_identity
from dfp.pki import create_mtls
from dfp.local_s3 import LocalS3, free_port

REPO = pathlib.Path(__file__).resolve().parent.parent
CREATOR_POLL_S = 0.5


def wait_healthy(target: str, service: str = "", timeout_s: float = 120.0, process: subprocess.Popen | None = None,
                 log: pathlib.Path | None = None) -> None:
    """Waits until the gRPC health service at `target` answers SERVING for `service`."""
    deadline = time.monotonic() + timeout_s
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                tail = log.read_text()[-2000:] if log and log.exists() else ""
                raise RuntimeError(f"{target}: process exited with {process.returncode}\n{tail}")
            try:
                response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.3)
    raise TimeoutError(f"{target} not healthy after {timeout_s:.0f} s; see {log}")


class LocalStack:
    """``animation_model`` is (config, checkpoint) of the FOMM model the creator serves as "fomm";
    None leaves the creator service out (creation jobs then fail with UNAVAILABLE). The creator reads
    the registry for face swap models every ``CREATOR_POLL_S``. The gateway listens on
    ``gateway_port`` (default: a free port), every other process on a free port."""

    def __init__(self, workdir: pathlib.Path, model_base_path: pathlib.Path, extra_env: dict[str, str] | None = None,
                 animation_model: tuple[pathlib.Path, pathlib.Path] | None = None, gateway_port: int | None = None):
        self.workdir = pathlib.Path(workdir)
        self.model_base_path = pathlib.Path(model_base_path)
        self.extra_env = dict(extra_env or {})
        self.animation_model = animation_model
        self.creator_target = f"127.0.0.1:{free_port()}" if animation_model is not None else None
        self.s3 = LocalS3(self.workdir / "s3")
        self.model_server_target = f"127.0.0.1:{free_port()}"
        self.gateway_target = f"127.0.0.1:{gateway_port or free_port()}"
        self.enhancer_target = f"127.0.0.1:{free_port()}"
        self.metrics_ports = {"gateway": free_port(), "model_server": free_port(), "enhancer": free_port(),
                              "creator": free_port()}
        # The model server and the enhancer speak mutual TLS (as the chart's internalTls does) and
        # answer plaintext health checks on these ports.
        self.health_ports = {"model_server": free_port(), "enhancer": free_port()}
        self.mtls_dir = self.workdir / "mtls"
        self.token = ""  # an API token of team "default", made at start
        # A private C2PA signing identity, made at start: the gateway signs what it generates with it.
        self.c2pa_dir = self.workdir / "c2pa"
        self._processes: dict[str, subprocess.Popen] = {}

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **self.s3.env(),
            "DFP_MODEL_SERVER_LISTEN": self.model_server_target,
            "DFP_MODEL_BASE_PATH": str(self.model_base_path),
            "DFP_MODEL_POLL_WAIT_S": "0.5",
            "DFP_GATEWAY_LISTEN": self.gateway_target,
            "DFP_DETECTOR_TARGET": self.model_server_target,
            "DFP_GATEWAY": self.gateway_target,
            "DFP_ENHANCER_LISTEN": self.enhancer_target,
            "DFP_ENHANCER_TARGET": self.enhancer_target,
            "DFP_TOKEN": self.token,
            "DFP_C2PA_CERT": str(self.c2pa_dir / "signer-chain.pem"),
            "DFP_C2PA_KEY": str(self.c2pa_dir / "signer-key.pem"),
            "DFP_C2PA_TRUST_ANCHORS": str(self.c2pa_dir / "ca.pem"),
            "DFP_MTLS_CA": str(self.mtls_dir / "ca.crt"),
            "DFP_MTLS_CERT": str(self.mtls_dir / "tls.crt"),
            "DFP_MTLS_KEY": str(self.mtls_dir / "tls.key"),
            **({"DFP_CREATOR_TARGET": self.creator_target} if self.creator_target else {}),
            "PYTHONPATH": str(REPO),
            **self.extra_env,
        }

    def object_store(self):
        """The stack's object store, as the services see it."""
        from dfp.config import StorageSettings
        from dfp.storage import ObjectStore

        store = ObjectStore(StorageSettings(self.s3.endpoint, self.s3.access_key, self.s3.secret_key, False,
                                           self.extra_env.get("DFP_BUCKET_PREFIX", "dfp"), "us-east-1"))
        store.ensure_buckets()
        return store

    def create_token(self, team: str, name: str) -> str:
        """A new API token for ``team``, as `dfp admin token create` makes one."""
        from dfp.tokens import TokenStore

        return TokenStore(self.object_store()).create(team, name)[1]

    def log_path(self, name: str) -> pathlib.Path:
        return self.workdir / f"{name}.log"

    def start_process(self, name: str, module: str, target: str, service: str) -> None:
        log = open(self.log_path(name), "ab")
        env = {**self.env(), "DFP_METRICS_LISTEN": f"127.0.0.1:{self.metrics_ports[name]}"}
        health_target = target
        if name in self.health_ports:
            health_target = env["DFP_HEALTH_LISTEN"] = f"127.0.0.1:{self.health_ports[name]}"
        process = subprocess.Popen([sys.executable, "-m", module], env=env, cwd=REPO, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._processes[name] = process
        wait_healthy(health_target, service, process=process, log=self.log_path(name))

    def start(self) -> "LocalStack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.s3.start()
            self.token = self.create_token("default", "local stack")
            create_identity(self.c2pa_dir, "dfp local stack")
            create_mtls(self.mtls_dir, ["127.0.0.1", "localhost"], "dfp local stack")
            self.start_model_server()
            if self.animation_model is not None:
                self.start_creator()
            self.start_enhancer()
            self.start_gateway()
        except BaseException:
            self.stop()
            raise
        return self

    def start_creator(self, timeout_s: float = 240.0) -> None:
        config, checkpoint = self.animation_model
        workdir = self.workdir / "creator"
        ready = workdir / "ready"
        ready.unlink(missing_ok=True)
        log = open(self.log_path("creator"), "ab")
        process = subprocess.Popen(
            [sys.executable, "-m", "services.creator.serving", "--config", str(config), "--checkpoint", str(checkpoint),
             "--grpc-port", self.creator_target.rsplit(":", 1)[1], "--http-port", str(free_port()),
             "--metrics-port", str(self.metrics_ports["creator"]),
             "--workdir", str(workdir), "--ready-file", str(ready), "--poll-s", str(CREATOR_POLL_S)],
            env=self.env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._processes["creator"] = process
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if process.poll() is not None:
                raise RuntimeError(f"creator exited with {process.returncode}\n"
                                   f"{self.log_path('creator').read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"creator not ready after {timeout_s:.0f} s; see {self.log_path('creator')}")
            time.sleep(0.3)

    def start_model_server(self) -> None:
        self.start_process("model_server", "services.detector.model_server", self.model_server_target,
                           "tensorflow.serving.PredictionService")

    def start_enhancer(self) -> None:
        self.start_process("enhancer", "services.enhancer.server", self.enhancer_target, "dfp.enhancer.v1.EnhancerService")

    def start_gateway(self) -> None:
        self.start_process("gateway", "gateway", self.gateway_target, "dfp.v1.DetectionService")

    def pids(self) -> dict[str, int]:
        """The process id of each server the stack started, the S3 server's included (the creator
        stops TorchServe, which it starts in a process group of its own)."""
        return {"s3": self.s3.process.pid, **{name: process.pid for name, process in self._processes.items()}}

    def stop_process(self, name: str, timeout_s: float = 60.0) -> None:
        self._stop_all([name], timeout_s)

    def _stop_all(self, names: list[str], timeout_s: float) -> None:
        """SIGTERM to each at once, then wait for all within one ``timeout_s`` (not one each: on a
        loaded machine four graceful shutdowns in a row took minutes), SIGKILL to any still running."""
        processes = [process for process in (self._processes.pop(name, None) for name in names)
                     if process is not None and process.poll() is None]
        for process in processes:
            process.terminate()
        deadline = time.monotonic() + timeout_s
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        self._stop_all(list(self._processes)[::-1], 60.0)
        self.s3.stop()

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
