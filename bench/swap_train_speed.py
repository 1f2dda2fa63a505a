"""Face swap training speed: optimisation steps per second of the default autoencoder at 64 and 128
pixels (a batch of each identity per step), on this machine's CPU or a GPU, and the 128/64 ratio.

    make bench
    python bench/swap_train_speed.py --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces  # noqa: E402,F401  (torch stack first: see dfp.faces)
import torch  # noqa: E402

from services.creator.archs.autoencoder_arch import FaceSwapAutoencoder  # noqa: E402
from services.creator.training.swap_train import DEFAULT_DIMS, train_step  # noqa: E402


def steps_per_second(resolution: int, batch: int, steps: int, device: str) -> float:
    model = FaceSwapAutoencoder(resolution, ("a", "b"), "df", **DEFAULT_DIMS).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5, betas=(0.5, 0.999))
    generator = torch.Generator().manual_seed(0)
    batches = {name: torch.rand(batch, 3, resolution, resolution, generator=generator).to(device) for name in "ab"}
    train_step(model, optimizer, batches, generator)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, batches, generator)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else platform.processor() or "cpu"
    print(f"device: {args.device} ({name}), torch {torch.__version__}, {torch.get_num_threads()} threads")
    rates = {size: steps_per_second(size, args.batch, args.steps, args.device) for size in (64, 128)}
    for size, rate in rates.items():
        print(f"face swap training at {size}x{size}, batch {args.batch} per identity: {rate:.2f} steps/s")
    print(f"ratio 128/64: {rates[128] / rates[64]:.2f}")


if __name__ == "__main__":
    main()
