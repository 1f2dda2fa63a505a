"""`dfp dev up`: the local platform stays up for other teams' stubs and Ctrl-C stops all of it."""

from __future__ import annotations

import json
import os
import pathlib
import queue
import signal
import subprocess
import sys
import threading
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp.devstack import REPO

START_TIMEOUT_S = 240


def read_exports(process: subprocess.Popen, timeout_s: float, log: pathlib.Path) -> dict[str, str]:
    """The `export NAME=VALUE` lines the command prints once the platform is up (read on a thread:
    a selector on a buffered pipe misses lines that arrived together)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    exports: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(exports) < 2:
        assert time.monotonic() < deadline, f"dfp dev up printed no exports in time:\n{log.read_text()[-3000:]}"
        assert process.poll() is None, f"dfp dev up exited with {process.returncode}:\n{log.read_text()[-3000:]}"
        try:
            line = lines.get(timeout=1)
        except queue.Empty:
            continue
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
    log = tmp_path / "dev-up.stderr"
    with open(log, "w") as stderr:
        process = subprocess.Popen([sys.executable, "-m", "dfp.cli.main", "dev", "up", "--port", "0", "--no-creator",
                                    "--workdir", str(workdir)],
                                   cwd=REPO, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                   env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        exports = read_exports(process, START_TIMEOUT_S, log)
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
        assert log.read_text().rstrip().endswith("stopped")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
