"""Load run: the gateway's throughput curve as clients grow, for a fixed time per step.

Each client loops: upload a fresh small JPEG (unique bytes, sha256 sent), then DetectImage on inline
face-crop bytes, through `dfp.client` (which sends a call the gateway turned away at capacity again
after the hinted delay). At the end every upload the gateway acknowledged is downloaded again and its
sha256 compared: an acknowledged upload that does not read back whole counts as lost. Printed per
client count: calls/s and its ratio to the best count in the same run, p50/p99 latency per call,
errors by status (after the client's retries), and the refusals at capacity the gateway counted
(its dfp_admission_rejected_total); then lost uploads. Absolute times on a shared machine are noise.

    make load                                        # 1, 4, 16, 32, 64 clients, 60 s each
    python bench/load_gateway.py --clients 1,32 --seconds 30
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import io
import pathlib
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces as faces_lib  # noqa: E402,F401  (torch before TensorFlow, see dfp.faces)
from dfp.devstack import LocalStack  # noqa: E402


def unique_jpeg(seed: int) -> bytes:
    from PIL import Image

    rgb = np.random.RandomState(seed).randint(0, 255, (48, 64, 3), np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


class Tally:
    def __init__(self):
        self.latencies: dict[str, list[float]] = collections.defaultdict(list)
        self.errors: collections.Counter = collections.Counter()
        self.uploaded: list[tuple[str, str]] = []
        self.lock = threading.Lock()


def run_clients(target: str, token: str, clients: int, seconds: float, crop: bytes, workdir: pathlib.Path,
                first_seed: int) -> Tally:
    from dfp.client import ApiError, Client
    from dfp.v1 import detection_pb2

    tally = Tally()
    stop_at = time.monotonic() + seconds
    seeds = iter(range(first_seed, first_seed + 10**6))
    options = detection_pb2.DetectionOptions(face_crop=detection_pb2.FACE_CROP_OFF)

    def client_loop(index: int) -> None:
        with Client(target, timeout_s=30, token=token) as client:
            while time.monotonic() < stop_at:
                with tally.lock:
                    seed = next(seeds)
                path = workdir / f"{seed}.jpg"
                data = unique_jpeg(seed)
                path.write_bytes(data)
                for name, call in (("upload", lambda: client.upload(path)),
                                   ("detect", lambda: client.detect_image(image_bytes=crop, options=options))):
                    started = time.perf_counter()
                    try:
                        result = call()
                    except ApiError as exc:
                        with tally.lock:
                            tally.errors[f"{name} {exc.code.name}"] += 1
                        continue
                    with tally.lock:
                        tally.latencies[name].append(time.perf_counter() - started)
                        if name == "upload":
                            tally.uploaded.append((result.name, hashlib.sha256(data).hexdigest()))
                path.unlink()

    threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def lost_uploads(target: str, token: str, uploaded: list[tuple[str, str]], workdir: pathlib.Path) -> int:
    from dfp.client import ApiError, Client, sha256_file

    lost = 0
    with Client(target, timeout_s=60, token=token) as client:
        for name, sha256 in uploaded:
            out = workdir / "readback"
            try:
                client.download(name, out)
            except ApiError:
                lost += 1
                continue
            lost += sha256_file(out) != sha256
    return lost


def refusals(metrics_port: int) -> float:
    """Calls the gateway has turned away at capacity so far, from its Prometheus metrics."""
    import requests

    text = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("dfp_admission_rejected_total{"))


def summary(tally: Tally, refused: float) -> str:
    parts = []
    for name, values in sorted(tally.latencies.items()):
        p50, p99 = np.percentile(np.array(values) * 1000, [50, 99])
        parts.append(f"{name}: {len(values)} ok, p50 {p50:.0f} ms, p99 {p99:.0f} ms")
    errors = dict(tally.errors) or "none"
    return f"{'; '.join(parts)}; errors {errors}; refused at capacity (then retried) {refused:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,4,16,32,64", help="client counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=60.0, help="seconds per client count")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]

    from services.detector import archs, pretrained
    from services.detector.export import export_version
    from services.detector.weights import load_h5_weights

    crop = unique_jpeg(0)
    results = []
    with tempfile.TemporaryDirectory(prefix="dfp-load-") as tmp:
        workdir = pathlib.Path(tmp)
        model = archs.build("meso4")
        load_h5_weights(model, pretrained.default_weights("meso4"))
        export_version(model, workdir / "models", "detector", 1)
        env = {"DFP_QUOTA_REQUESTS_PER_MINUTE": "1000000", "DFP_QUOTA_CONCURRENT_JOBS": "1000"}
        uploaded = []
        with LocalStack(workdir / "stack", workdir / "models", env) as stack:
            for step, clients in enumerate(counts):
                before = refusals(stack.metrics_ports["gateway"])
                tally = run_clients(stack.gateway_target, stack.token, clients, args.seconds, crop, workdir,
                                    1 + step * 10**7)
                results.append((clients, tally, refusals(stack.metrics_ports["gateway"]) - before))
                uploaded += tally.uploaded
            lost = lost_uploads(stack.gateway_target, stack.token, uploaded, workdir)
    rates = {clients: sum(len(v) for v in tally.latencies.values()) / args.seconds for clients, tally, _ in results}
    best = max(rates.values())
    for clients, tally, refused in results:
        print(f"{clients:3d} clients: {rates[clients]:6.1f} calls/s, ratio to the best count {rates[clients] / best:.2f}; "
              + summary(tally, refused))
    print(f"acknowledged uploads {len(uploaded)}, lost or corrupted on read-back: {lost}")
    if lost:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
