"""Where a DetectImage call's time goes: py-spy samples of the gateway and the model server while
concurrent clients detect through the gateway (the load of bench/detect_throughput.py).

Samples are taken only while a thread holds the GIL (py-spy --gil): a Python process runs one such
thread at a time, so the share of time the GIL is held says how close the process is to its limit,
and the samples say what holds it. Prints, per process, that share, the share of samples in each
stage of the call (the innermost frame of ours or of a library named in STAGES), and the hottest
functions by own time. Writes the folded stacks beside, for flame graphs.

    make profile                     # or: python bench/profile_detect.py --clients 16 --seconds 20 --out /tmp/dfp-profile
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.detect_throughput import face_crops, through_gateway  # noqa: E402  (imports dfp.faces first)
from dfp.devstack import LocalStack  # noqa: E402

# (label, substring of a frame) in the order a call passes them; a sample counts for the first match
# from the innermost frame outwards.
STAGES = (
    ("protobuf (de)serialisation", "google/protobuf"),
    ("tensor proto <-> numpy", "tensor_util"),
    ("image decode", "dfp/media.py"),
    ("face crop and resize", "dfp/faces.py"),
    ("model (TensorFlow)", "tensorflow/python"),
    ("batching queue", "batching.py"),
    ("detector client", "detector_client.py"),
    ("authentication", "gateway/auth.py"),
    ("rate limit and quotas", "gateway/quotas.py"),
    ("audit", "audit.py"),
    ("call metrics and logging", "observability.py"),
    ("object store", "minio"),
    ("gRPC server machinery", "grpc/_server.py"),
)
RATE = 200


def record(pid: int, seconds: float, out: pathlib.Path) -> subprocess.Popen:
    py_spy = shutil.which("py-spy") or str(pathlib.Path(sys.executable).parent / "py-spy")
    return subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", str(RATE),
                             "--format", "raw", "--output", str(out), "--gil"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarise(name: str, folded: pathlib.Path, seconds: float) -> None:
    stages: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    busy = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        count = int(count)
        busy += count
        own[frames[-1]] += count
        label = next((label for frame in reversed(frames) for label, marker in STAGES if marker in frame), "other")
        stages[label] += count
    print(f"\n{name}: GIL held {busy / (RATE * seconds):.0%} of the time ({busy} samples)")
    for label, count in stages.most_common():
        print(f"  {count / busy:6.1%}  {label}")
    print("  hottest functions (own time):")
    for frame, count in own.most_common(8):
        print(f"  {count / busy:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path(tempfile.gettempdir()) / "dfp-profile")
    args = parser.parse_args()

    from services.detector import pretrained, scoring
    from services.detector.export import export_version

    args.out.mkdir(parents=True, exist_ok=True)
    crops = face_crops(64)
    with tempfile.TemporaryDirectory(prefix="dfp-profile-") as tmp:
        export_version(scoring.load_network(pretrained.default_weights("meso4"), "meso4"),
                       pathlib.Path(tmp) / "models", "meso4", 1)
        env = {"DFP_MAX_BATCH_SIZE": "16", "DFP_DEFAULT_DETECTOR": "meso4", "DFP_QUOTA_REQUESTS_PER_MINUTE": "1000000"}
        with LocalStack(pathlib.Path(tmp) / "stack", pathlib.Path(tmp) / "models", env) as stack:
            through_gateway(stack.gateway_target, stack.token, crops, args.clients, 200)  # warm up
            stop = threading.Event()

            def load():
                while not stop.is_set():
                    through_gateway(stack.gateway_target, stack.token, crops, args.clients, 400)

            loader = threading.Thread(target=load)
            loader.start()
            pids = stack.pids()
            samplers = {name: record(pids[name], args.seconds, args.out / f"{name}.folded")
                        for name in ("gateway", "model_server")}
            for sampler in samplers.values():
                sampler.wait()
            stop.set()
            loader.join()
    for name in samplers:
        summarise(name, args.out / f"{name}.folded", int(args.seconds))
    print(f"\nfolded stacks in {args.out}")


if __name__ == "__main__":
    main()
