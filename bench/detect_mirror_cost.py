"""What mirror averaging costs: the default detector's face crops per second, one view vs mirror-averaged.

Both sides are the platform's default detector in process, on the same DFDC validation crops at the
same batch size; the mirror-averaged side is what the card serves. Printed as a ratio measured in the
same run (absolute rates on a shared machine are noise). Expected: about 0.5, the network runs twice.

    make bench
    python bench/detect_mirror_cost.py --crops 128 --batch-size 32 --repeats 3
"""

from __future__ import annotations

import argparse
import pathlib
import platform
import sys
import time

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces as faces_lib  # noqa: E402  (torch before TensorFlow, see dfp.faces)
from dfp import config  # noqa: E402


def crops(count: int) -> np.ndarray:
    """Model-ready 256x256 crops: DFDC validation faces when the shared data is there, else noise."""
    from PIL import Image

    folder = config.shared_dir() / "data" / "dfdc-faces" / "val" / "fake"
    sources = sorted(folder.iterdir())[:count] if folder.is_dir() else []
    images = []
    for i in range(count):
        if sources:
            rgb = np.asarray(Image.open(sources[i % len(sources)]).convert("RGB"))
        else:
            rgb = np.random.RandomState(i).randint(0, 255, (256, 256, 3), np.uint8)
        images.append(faces_lib.resize_to_model_input(rgb))
    return np.stack(images)


def crops_per_second(detector, batch: np.ndarray, batch_size: int, repeats: int) -> float:
    detector.fake_probability(batch[:batch_size], batch_size)
    start = time.perf_counter()
    for _ in range(repeats):
        detector.fake_probability(batch, batch_size)
    return repeats * len(batch) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from services.detector import pretrained
    from services.detector.scoring import Detector

    default = pretrained.default_detector()
    batch = crops(args.crops)
    one_view = crops_per_second(Detector.from_h5(default.weights, default.arch, mirror_average=False), batch,
                                args.batch_size, args.repeats)
    mirrored = crops_per_second(Detector.from_h5(default.weights, default.arch, mirror_average=True), batch,
                                args.batch_size, args.repeats)
    print(f"default detector ({default.arch}), {args.crops} crops, batch {args.batch_size}, on {platform.machine()}:")
    print(f"  mirror-averaged / one view, crops per second: {mirrored / one_view:.2f}")


if __name__ == "__main__":
    main()
