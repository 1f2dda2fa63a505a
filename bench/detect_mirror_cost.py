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

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.detect_throughput import crops_per_second, face_crops, model_ready  # noqa: E402  (imports dfp.faces first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from services.detector import pretrained
    from services.detector.scoring import Detector

    default = pretrained.default_detector()
    batch = model_ready(face_crops(args.crops))
    one_view, _ = crops_per_second(Detector.from_h5(default.weights, default.arch, mirror_average=False), batch,
                                args.batch_size, args.repeats)
    mirrored, _ = crops_per_second(Detector.from_h5(default.weights, default.arch, mirror_average=True), batch,
                                args.batch_size, args.repeats)
    print(f"default detector ({default.arch}), {args.crops} crops, batch {args.batch_size}, on {platform.machine()}:")
    print(f"  mirror-averaged / one view, crops per second: {mirrored / one_view:.2f}")


if __name__ == "__main__":
    main()
