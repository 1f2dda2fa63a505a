"""`dfp dev up`: the local platform stays up for other teams' stubs and Ctrl-C stops all of it."""

from __future__ import annotations

import json
import os
import pathlib
import selectors
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp.devstack import REPO

START_TIMEOUT_S = 240


def read_exports(process: subprocess.Popen, timeout_s: float) -> dict[str, str]:
    """The `export NAME=VALUE` lines the command prints once the platform is up."""
    exports: dict[str, str] = {}
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout_s
    while len(exports) < 2:
        assert time.monotonic() < deadline, "dfp dev up printed no exports in time"
        assert process.poll() is None, f"dfp dev up exited with {process.returncode}"
        if selector.select(timeout=1):
            line = process.stdout.readline()
            if line.startswith("export "):
                name, value = line.removeprefix("export ").strip().split("=", 1)
                exports[name] = value
    return exports


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dev_up_serves_a_plain_stub_until_interrupted_then_stops_every_process(tmp_path, shared):
    from dfp.v1 import detection_pb2, detection_pb2_grpc

    workdir = tmp_path / "dev"
    process = subprocess.Popen([sys.executable, "-m", "dfp.cli.main", "dev", "up", "--port", "0", "--no-creator",
                                "--workdir", str(workdir)],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        exports = read_exports(process, START_TIMEOUT_S)
        pids = json.loads((workdir / "stack.json").read_text())["pids"]
        assert set(pids) == {"s3", "model_server", "enhancer", "gateway"}
        face = pathlib.Path(shared / "video" / "source" / "s0.jpg").read_bytes()
        with grpc.insecure_channel(exports["DFP_GATEWAY"]) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="dfp.v1.DetectionService"), timeout=10)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            response = detection_pb2_grpc.DetectionServiceStub(channel).DetectImage(
                detection_pb2.DetectImageRequest(image_bytes=face), timeout=60,
                metadata=[("authorization", f"Bearer {exports['DFP_TOKEN']}")])
        assert len(response.faces) == 1 and 0.0 <= response.faces[0].fake_probability <= 1.0
        assert response.model.name == "detector"
        assert all(process_exists(pid) for pid in pids.values())

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=120) == 0
        assert not [name for name, pid in pids.items() if process_exists(pid)]
        assert "stopped" in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
