"""Detection throughput: face crops per second through the gateway, and with TensorFlow Serving's
official client straight to the model server, vs the same model in process.

All sides score the same 256x256 face crops with Meso4 (published DF weights). The gateway side
sends each crop as one DetectImage call (inline bytes, face crop off) from concurrent clients; the
gateway decodes it and calls the model server over TensorFlow Serving's API, which batches
concurrent requests. The direct side sends each decoded crop (uint8, as the exported signature
takes it) as one Predict call from the same number of clients, over the stack's mutual TLS. The
in-process side calls the Keras model on the decoded crops at the model server's max batch size.
The clients, the gateway and the model server share this machine's cores. Printed as ratios
measured in the same run (absolute rates on a shared machine are noise). Goals: gateway >= 0.7 and
direct >= 0.9 of in-process.

    make bench                       # defaults below
    python bench/detect_throughput.py --clients 16 --requests 2000 --max-batch-size 32
"""

from __future__ import annotations

import argparse
import io
import os
import pathlib
import platform
import sys
import tempfile
import threading
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces as faces_lib  # noqa: E402  (torch before TensorFlow, see dfp.faces)
from dfp import config  # noqa: E402
from dfp.devstack import LocalStack  # noqa: E402


def face_crops(count: int) -> list[bytes]:
    """PNG-encoded 256x256 crops: DFDC validation faces when the shared data is there, else noise."""
    from PIL import Image

    folder = config.shared_dir() / "data" / "dfdc-faces" / "val" / "fake"
    sources = sorted(folder.iterdir())[:count] if folder.is_dir() else []
    crops = []
    for i in range(count):
        if sources:
            image = Image.open(sources[i % len(sources)]).convert("RGB").resize((256, 256), Image.BICUBIC)
        else:
            image = Image.fromarray(np.random.RandomState(i).randint(0, 255, (256, 256, 3), np.uint8))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        crops.append(buffer.getvalue())
    return crops


def percentiles(latencies: list[float]) -> str:
    p50, p90, p99 = np.percentile(np.array(latencies) * 1000, [50, 90, 99])
    return f"p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms"


def model_ready(crops: list[bytes]) -> np.ndarray:
    """The crops decoded and resized as the gateway does: float32 [N, 256, 256, 3] in [0, 1]."""
    from dfp.media import decode_image

    return np.stack([faces_lib.resize_to_model_input(decode_image(c, 10**6)) for c in crops])


def crops_per_second(detector, batch: np.ndarray, batch_size: int, repeats: int) -> tuple[float, float]:
    """In-process scoring rate of `detector` over `batch`, after one warm-up batch, and the CPU
    milliseconds (all threads) per crop."""
    detector.fake_probability(batch[:batch_size], batch_size)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        detector.fake_probability(batch, batch_size)
    crops = repeats * len(batch)
    return crops / (time.perf_counter() - start), (time.process_time() - cpu_start) * 1000 / crops


def in_process(weights: pathlib.Path, crops: list[bytes], batch_size: int, repeats: int) -> tuple[float, float]:
    from services.detector.scoring import Detector

    return crops_per_second(Detector.from_h5(weights), model_ready(crops), batch_size, repeats)


def closed_loop(clients: int, requests: int, open_client, call) -> tuple[float, list[float]]:
    """``requests`` calls from ``clients`` threads, each with its own ``open_client()`` (a context
    manager) and one warm-up call; ``call(client, i)`` makes call i. Returns calls/s and latencies."""
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(requests))

    def worker():
        with open_client() as client:
            call(client, 0)
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                began = time.perf_counter()
                call(client, i)
                with lock:
                    latencies.append(time.perf_counter() - began)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return requests / (time.perf_counter() - start), latencies


def through_gateway(target: str, token: str, crops: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
    from dfp.client import Client
    from dfp.v1 import detection_pb2

    options = detection_pb2.DetectionOptions(face_crop=detection_pb2.FACE_CROP_OFF)
    return closed_loop(clients, requests, lambda: Client(target, timeout_s=60, token=token),
                       lambda client, i: client.detect_image(image_bytes=crops[i % len(crops)], options=options))


def direct_to_model_server(stack: LocalStack, crops: list[bytes], clients: int, requests: int) -> tuple[float, list[float]]:
    """Official TF Serving stubs: one Predict of one uint8 crop per call, from ``clients`` threads."""
    import contextlib

    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from dfp.grpc_util import MutualTls, service_channel
    from dfp.media import decode_image

    protos = []
    for crop in (faces_lib.resize_to_model_pixels(decode_image(c, 10**6)) for c in crops):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "meso4"
        request.inputs["image"].CopyFrom(tf.make_tensor_proto(crop[None]))
        protos.append(request)
    mtls = MutualTls.from_files(stack.mtls_dir / "ca.crt", stack.mtls_dir / "tls.crt", stack.mtls_dir / "tls.key")

    @contextlib.contextmanager
    def open_stub():
        with service_channel(stack.model_server_target, mtls=mtls) as channel:
            yield prediction_service_pb2_grpc.PredictionServiceStub(channel)

    return closed_loop(clients, requests, open_stub, lambda stub, i: stub.Predict(protos[i % len(protos)], timeout=60))


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds used so far by each named process (threads and all)."""
    import psutil

    used = {}
    for name, pid in pids.items():
        times = psutil.Process(pid).cpu_times()
        used[name] = times.user + times.system
    return used


def cpu_per_call(before: dict[str, float], after: dict[str, float], calls: int) -> str:
    """Milliseconds of CPU per call in each process between two `cpu_seconds` readings."""
    return ", ".join(f"{name} {(after[name] - before[name]) * 1000 / calls:.2f} ms" for name in before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--crops", type=int, default=64)
    parser.add_argument("--max-batch-size", type=int, default=16)
    parser.add_argument("--batch-timeout-micros", type=int, default=5000)
    args = parser.parse_args()

    from services.detector import pretrained, scoring
    from services.detector.export import export_version

    weights = pretrained.default_weights("meso4")
    crops = face_crops(args.crops)
    print(f"device: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; model meso4 ({weights.name})")
    baseline, baseline_cpu_ms = in_process(weights, crops, args.max_batch_size, repeats=max(1, args.requests // args.crops))
    baseline_single, _ = in_process(weights, crops, 1, repeats=1)
    print(f"in process, batch {args.max_batch_size}: {baseline:.1f} crops/s ({baseline_cpu_ms:.2f} ms CPU per crop); "
          f"batch 1: {baseline_single:.1f} crops/s")

    with tempfile.TemporaryDirectory(prefix="dfp-bench-") as tmp:
        export_version(scoring.load_network(weights, "meso4"), pathlib.Path(tmp) / "models", "meso4", 1)
        # The gateway's default model is the platform's detector; this bench measures Meso4 on both sides.
        env = {"DFP_MAX_BATCH_SIZE": str(args.max_batch_size), "DFP_BATCH_TIMEOUT_MICROS": str(args.batch_timeout_micros),
               "DFP_DEFAULT_DETECTOR": "meso4", "DFP_QUOTA_REQUESTS_PER_MINUTE": "1000000"}
        with LocalStack(pathlib.Path(tmp) / "stack", pathlib.Path(tmp) / "models", env) as stack:
            pids = {"clients": os.getpid(), **stack.pids()}
            before = cpu_seconds(pids)
            rate, latencies = through_gateway(stack.gateway_target, stack.token, crops, args.clients, args.requests)
            between = cpu_seconds(pids)
            direct, direct_latencies = direct_to_model_server(stack, crops, args.clients, args.requests)
            after = cpu_seconds(pids)
    print(f"through the gateway, {args.clients} clients, batching max {args.max_batch_size}: {rate:.1f} crops/s "
          f"({percentiles(latencies)})")
    print(f"  CPU per call: {cpu_per_call(before, between, args.requests)}")
    print(f"TF Serving client to the model server, {args.clients} clients: {direct:.1f} crops/s "
          f"({percentiles(direct_latencies)})")
    print(f"  CPU per call: {cpu_per_call(between, after, args.requests)}")
    print(f"ratio gateway / in-process batch {args.max_batch_size}: {rate / baseline:.2f} (goal >= 0.70)")
    print(f"ratio TF Serving client / in-process batch {args.max_batch_size}: {direct / baseline:.2f} (goal >= 0.90)")
    print(f"ratio gateway / in-process batch 1: {rate / baseline_single:.2f}")


if __name__ == "__main__":
    main()
