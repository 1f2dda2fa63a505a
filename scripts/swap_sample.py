"""A face swap sample on held-out frames, and what the platform's detector makes of it.

    python scripts/swap_sample.py --run .run/swap/run-d6-d9 --target ../shared/data/video/driving/d6.mp4

Takes the target clip's last fifth (frames the run never trained on), swaps its face to identity b
(`dfp swap merge`'s pipeline), writes the swapped clip and a contact sheet (original frame, aligned
face, swapped face, merged frame) to --out, and scores both the original held-out clip and the swap
with the platform's default detector. Results stay outside the repository (they are made from the
shared clips).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces as faces_lib  # noqa: E402  (torch stack before TensorFlow: see dfp.faces)
from dfp import media, provenance  # noqa: E402
from services.creator.pipelines import swap_media  # noqa: E402
from services.creator.swap_model import load_run  # noqa: E402
from services.creator.training.swap_train import HOLDOUT_FRACTION  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=pathlib.Path, required=True)
    parser.add_argument("--target", type=pathlib.Path, required=True)
    parser.add_argument("--to", default="b")
    parser.add_argument("--out", type=pathlib.Path, default=REPO / ".run" / "swap-sample")
    args = parser.parse_args()
    from PIL import Image

    args.out.mkdir(parents=True, exist_ok=True)
    info = media.video_stream_info(args.target)
    heldout_clip = args.out / "heldout.mp4"
    writer = media.VideoWriter(heldout_clip, info.frames_per_second)
    frames = list(media.iter_video_frames(args.target))
    for frame in frames[int(round(len(frames) * (1 - HOLDOUT_FRACTION))):]:
        writer.write(frame)
    writer.close()

    model, settings = load_run(args.run)
    detector = faces_lib.FaceDetector()
    kept = []
    options = swap_media.MergeOptions(to_identity=args.to, coverage=settings.get("coverage", 1.6))
    result = swap_media.swap_video(
        swap_media.FaceSwapper(model), heldout_clip, args.out / "swapped.mp4", options, detector=detector,
        metadata=provenance.synthetic_metadata(f"faceswap:{args.run.name}"),
        on_frame=lambda original, aligned, swapped, merged: kept.append((original, aligned, swapped, merged))
        if aligned is not None else None,
    )
    size = 160
    rows = []
    for index in np.linspace(0, len(kept) - 1, 4).astype(int):
        tiles = [np.asarray(Image.fromarray(img).resize((size, size), Image.BICUBIC)) for img in kept[index]]
        rows.append(np.concatenate(tiles, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(args.out / "contact_sheet.png")

    from services.detector import scoring

    scorer = scoring.Detector.platform_default()
    report = {"frames": result.frames, "swapped_frames": result.swapped_frames}
    for name, clip in (("original_heldout", heldout_clip), ("swapped", args.out / "swapped.mp4")):
        video = scoring.score_video(clip, scorer, detector, frame_count=24)
        report[name] = {"mean_fake_probability": video.mean_fake_probability,
                        "max_fake_probability": video.max_fake_probability, "frames_with_faces": video.frames_with_faces}
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
