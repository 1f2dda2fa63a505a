"""Model archives and a local TorchServe: build a .mar from a config and a checkpoint, and run
TorchServe (Java 17) as a child process on free 127.0.0.1 ports, for the dev stack and the tests.

In a cluster the same archive is served by the chart's TorchServe Deployment."""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc
from google.protobuf import empty_pb2

from dfp.local_s3 import free_port

SERVING = pathlib.Path(__file__).resolve().parent
FOMM_HANDLER = SERVING / "fomm_handler.py"
SWAP_HANDLER = SERVING / "swap_handler.py"
# A batch of 64 uint8 frames at 256x256 is 12.6 MB; TorchServe's default limit is 6.5 MB.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def build_archive(handler: pathlib.Path, serialized: pathlib.Path, extra_files: dict[str, pathlib.Path],
                  export_dir: pathlib.Path, name: str, version: str = "1", archive_name: str = "") -> pathlib.Path:
    """``export_dir/{archive_name or name}.mar``: the handler, the serialized file, and ``extra_files``
    (archive name -> local file) at the archive's top level."""
    export_dir.mkdir(parents=True, exist_ok=True)
    archive_name = archive_name or name
    with tempfile.TemporaryDirectory() as staging:
        staged = []
        for arcname, local in extra_files.items():
            shutil.copyfile(local, pathlib.Path(staging) / arcname)
            staged.append(str(pathlib.Path(staging) / arcname))
        subprocess.run(
            [sys.executable, "-m", "model_archiver.model_packaging", "--model-name", archive_name, "--version", version,
             "--serialized-file", str(serialized), "--handler", str(handler), "--extra-files", ",".join(staged),
             "--export-path", str(export_dir), "--force"],
            check=True, capture_output=True, text=True,
        )
    return export_dir / f"{archive_name}.mar"


def build_fomm_archive(config: pathlib.Path, checkpoint: pathlib.Path, export_dir: pathlib.Path, name: str = "fomm",
                       version: str = "1") -> pathlib.Path:
    """The animation model with its config and the face restorer its full-resolution path uses."""
    from services.creator import default_model

    return build_archive(FOMM_HANDLER, checkpoint, {"config.yaml": config, "face_restore.pth": default_model.FACE_RESTORER},
                         export_dir, name, version)


def build_swap_archive(release: pathlib.Path, export_dir: pathlib.Path, name: str, version: str) -> pathlib.Path:
    """A face swap release folder (settings and weights) as ``export_dir/{name}.v{version}.mar``."""
    from services.creator import swap_model

    return build_archive(SWAP_HANDLER, release / swap_model.CHECKPOINT, {swap_model.SETTINGS: release / swap_model.SETTINGS},
                         export_dir, name, version, archive_name=f"{name}.v{version}")


class TorchServe:
    """TorchServe serving the archives in ``model_store``, gRPC inference on ``inference_target``.

    Ports left at 0 are picked free. Management (gRPC and HTTP) always binds 127.0.0.1: models are
    registered from archives in the model store, at start or by this process (``register``), never
    over the network."""

    def __init__(self, workdir: pathlib.Path, model_store: pathlib.Path, models: list[str], workers: int = 1,
                 bind: str = "127.0.0.1", inference_port: int = 0, http_port: int = 0, metrics_port: int = 0,
                 log_to_file: bool = True):
        self.workdir = pathlib.Path(workdir)
        self.model_store = pathlib.Path(model_store)
        self.models = models
        self.workers = workers
        self.bind = bind
        self.inference_port = inference_port or free_port()
        self.http_port = http_port or free_port()
        self.metrics_port = metrics_port or free_port()
        self.management_port = free_port()
        self.log = self.workdir / "torchserve.log" if log_to_file else None
        self._process: subprocess.Popen | None = None

    @property
    def inference_target(self) -> str:
        return f"127.0.0.1:{self.inference_port}"

    @property
    def management_target(self) -> str:
        return f"127.0.0.1:{self.management_port}"

    def _write_config(self) -> pathlib.Path:
        # Token authorization is off: inference carries no secrets and management listens on
        # 127.0.0.1 only; in a cluster a NetworkPolicy lets only the gateway reach inference.
        properties = {
            "inference_address": f"http://{self.bind}:{self.http_port}",
            "management_address": f"http://127.0.0.1:{free_port()}",
            # Frontend metrics (requests, latencies, queue time per model) in Prometheus text at /metrics.
            "metrics_address": f"http://{self.bind}:{self.metrics_port}",
            "metrics_mode": "prometheus",
            "grpc_inference_address": self.bind,
            "grpc_inference_port": self.inference_port,
            "grpc_management_address": "127.0.0.1",
            "grpc_management_port": self.management_port,
            "model_store": self.model_store,
            "load_models": ",".join(self.models),
            "default_workers_per_model": self.workers,
            "disable_token_authorization": "true",
            # Registration at run time (registry sync) over the 127.0.0.1-only management API.
            "enable_model_api": "true",
            "install_py_dep_per_model": "false",
            "max_request_size": MAX_MESSAGE_BYTES,
            "max_response_size": MAX_MESSAGE_BYTES,
            "default_response_timeout": 300,
            "disable_system_metrics": "true",
            "number_of_netty_threads": 2,
            "vmargs": f"-Xmx512m -XX:+UseSerialGC -Djava.io.tmpdir={self.workdir / 'tmp'}",
        }
        path = self.workdir / "config.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        return path

    def start(self, timeout_s: float = 180.0) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self._write_config()
        # TorchServe keeps its pid file and unpacked archives in the temp folder: one per instance.
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {**os.environ, "LOG_LOCATION": str(self.workdir / "logs"), "METRICS_LOCATION": str(self.workdir / "logs"),
               "TMPDIR": str(tmp)}
        torchserve = pathlib.Path(sys.executable).with_name("torchserve")
        command = [str(torchserve), "--start", "--foreground", "--ncs", "--ts-config", str(config),
                   "--model-store", str(self.model_store)]
        if self.log is None:
            self._process = subprocess.Popen(command, cwd=self.workdir, env=env, start_new_session=True)
        else:
            with open(self.log, "ab") as log:
                self._process = subprocess.Popen(command, cwd=self.workdir, env=env, stdout=log,
                                                 stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout_s: float) -> None:
        """Until the models answer: Ping says Healthy and every model has a ready worker."""
        from dfp.torchserve import inference_pb2_grpc, management_pb2, management_pb2_grpc

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log.read_text()[-3000:] if self.log else ""
                raise RuntimeError(f"torchserve exited with {self._process.returncode}; see {self.log}\n{tail}")
            try:
                with grpc.insecure_channel(self.inference_target) as channel:
                    inference_pb2_grpc.InferenceAPIsServiceStub(channel).Ping(empty_pb2.Empty(), timeout=2)
                with grpc.insecure_channel(self.management_target) as channel:
                    stub = management_pb2_grpc.ManagementAPIsServiceStub(channel)
                    ready = all(
                        '"status": "READY"' in stub.DescribeModel(
                            management_pb2.DescribeModelRequest(model_name=name.split("=")[0].removesuffix(".mar")),
                            timeout=2).msg
                        for name in self.models
                    )
                if ready:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"torchserve not ready after {timeout_s:.0f} s; see {self.log}")

    @contextlib.contextmanager
    def _management(self):
        from dfp.torchserve import management_pb2_grpc

        with grpc.insecure_channel(self.management_target) as channel:
            yield management_pb2_grpc.ManagementAPIsServiceStub(channel)

    def register(self, archive: str, model_name: str, workers: int = 1, timeout_s: float = 300.0) -> None:
        """Serves ``archive`` (a .mar in the model store); returns once its workers are up."""
        from dfp.torchserve import management_pb2

        with self._management() as stub:
            stub.RegisterModel(management_pb2.RegisterModelRequest(
                url=archive, model_name=model_name, initial_workers=workers, synchronous=True,
                response_timeout=300, startup_timeout=int(timeout_s)), timeout=timeout_s)

    def set_default(self, model_name: str, version: str) -> None:
        from dfp.torchserve import management_pb2

        with self._management() as stub:
            stub.SetDefault(management_pb2.SetDefaultRequest(model_name=model_name, model_version=version), timeout=30)

    def unregister(self, model_name: str, version: str) -> None:
        from dfp.torchserve import management_pb2

        with self._management() as stub:
            stub.UnregisterModel(management_pb2.UnregisterModelRequest(model_name=model_name, model_version=version),
                                 timeout=60)

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self) -> None:
        """SIGTERM to the whole process group: the torchserve launcher, its JVM and the workers."""
        if self._process is None or self._process.poll() is not None and not self._group_alive():
            return
        try:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=20)
            deadline = time.monotonic() + 20
            while self._group_alive() and time.monotonic() < deadline:
                time.sleep(0.2)
        except subprocess.TimeoutExpired:
            pass
        if self._group_alive():
            os.killpg(self._process.pid, signal.SIGKILL)
        self._process.wait()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self._process.pid, 0)
            return True
        except ProcessLookupError:
            return False
