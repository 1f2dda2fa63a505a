"""Super-resolution speed and memory: the tiled path against one untiled forward of the same weights.

1. x4 output megapixels per second on a 512x512 input: untiled (one forward) and tiled; their ratio.
2. Peak memory of tiled upscaling for 1, 4 and 8 megapixel inputs, each in a fresh process, with the
   input and output as memory-mapped .npy files (as `dfp enhancer run` does): on a GPU the peak CUDA
   memory allocated, on the CPU the peak anonymous memory (heap and activations, sampled every 20 ms;
   file-backed pages of the mapped arrays are not counted). Flat across sizes means bounded.

The CPU default is the compact srvgg-x4 (Real-ESRGAN x4plus takes minutes per megapixel on two cores);
on a GPU the default is esrgan-x4.

    make bench
    python bench/enhance_throughput.py --model esrgan-x4 --device cuda
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces  # noqa: E402,F401  (torch stack first: see dfp.faces)
import numpy as np  # noqa: E402
import torch  # noqa: E402

from services.enhancer import tiling  # noqa: E402
from services.enhancer.upscaler import load_upscaler  # noqa: E402


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def megapixels_per_second(upscaler, image: np.ndarray, options: tiling.TileOptions, device: str, repeats: int) -> float:
    tiling.upscale(upscaler.model, image[:64, :64], upscaler.model_scale, options=options)  # warm-up
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        tiling.upscale(upscaler.model, image, upscaler.model_scale, options=options)
    _synchronize(device)
    output_pixels = image.shape[0] * image.shape[1] * upscaler.model_scale ** 2 * repeats
    return output_pixels / 1e6 / (time.perf_counter() - started)


def _anonymous_kib() -> int:
    for line in pathlib.Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
    return 0


def measure_memory(model: str, device: str, megapixels: float, tile: int, half: bool) -> dict:
    """Runs in a child process: tiled upscaling of a memory-mapped input into a memory-mapped output."""
    upscaler = load_upscaler(model, device)
    side = int(round((megapixels * 1e6) ** 0.5))
    scale = upscaler.model_scale
    with tempfile.TemporaryDirectory() as folder:
        image = np.lib.format.open_memmap(f"{folder}/in.npy", mode="w+", dtype=np.float32, shape=(side, side, 3))
        for row in range(0, side, 256):
            image[row:row + 256] = np.random.default_rng(row).random((min(256, side - row), side, 3), dtype=np.float32)
        out = np.lib.format.open_memmap(f"{folder}/out.npy", mode="w+", dtype=np.float32,
                                        shape=(side * scale, side * scale, 3))
        baseline = _anonymous_kib()
        peak = [baseline]
        done = threading.Event()

        def sample() -> None:
            while not done.wait(0.02):
                peak[0] = max(peak[0], _anonymous_kib())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        tiling.upscale(upscaler.model, image, scale, options=tiling.TileOptions(tile=tile, tile_pad=16, half=half), out=out)
        _synchronize(device)
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    result = {"megapixels": side * side / 1e6, "seconds": seconds, "cpu_peak_mib": (peak[0] - baseline) / 1024}
    if device.startswith("cuda"):
        result["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2 ** 20
    return result


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--model", default=None, help="default: esrgan-x4 on a GPU, srvgg-x4 on the CPU")
    parser.add_argument("--side", type=int, default=512, help="input side for the speed comparison")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--sizes", default="1,4,8", help="input megapixels for the memory runs")
    parser.add_argument("--half", action=argparse.BooleanOptionalAction, default=True, help="fp16 on a GPU")
    parser.add_argument("--memory-child", type=float, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    model = args.model or ("esrgan-x4" if args.device.startswith("cuda") else "srvgg-x4")
    if args.memory_child is not None:
        print(json.dumps(measure_memory(model, args.device, args.memory_child, args.tile, args.half)))
        return

    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device: {args.device} ({name}), model {model}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    upscaler = load_upscaler(model, args.device)
    image = np.random.default_rng(0).random((args.side, args.side, 3), dtype=np.float32)
    untiled = megapixels_per_second(upscaler, image, tiling.TileOptions(tile=0, half=args.half), args.device, args.repeats)
    tiled = megapixels_per_second(upscaler, image, tiling.TileOptions(tile=args.tile, tile_pad=16, half=args.half),
                                  args.device, args.repeats)
    print(f"x4 on {args.side}x{args.side}: untiled {untiled:.2f} output MP/s, tiled (tile {args.tile}, pad 16) "
          f"{tiled:.2f} output MP/s; ratio tiled/untiled {tiled / untiled:.2f}")

    runs = []
    for megapixels in [float(size) for size in args.sizes.split(",")]:
        command = [sys.executable, __file__, "--memory-child", str(megapixels), "--device", args.device, "--model", model,
                   "--tile", str(args.tile), "--half" if args.half else "--no-half"]
        runs.append(json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]))
    key = "cuda_peak_mib" if args.device.startswith("cuda") else "cpu_peak_mib"
    for run in runs:
        print(f"tiled x4 of {run['megapixels']:.1f} MP input: peak {key.split('_')[0]} memory {run[key]:.0f} MiB, "
              f"ratio to the smallest {run[key] / runs[0][key]:.2f}, {run['seconds']:.1f} s")


if __name__ == "__main__":
    main()
