"""The invisible watermark's bit accuracy after common transformations, and how often unmarked real
media read as marked.

Marks the shared portrait stills and DFDC validation fake faces (upscaled to 512 px, as generated
frames are pasted into full frames), then applies JPEG at quality 50/70/90, a 0.5x resize, both, and
H.264 (libx264, crf 23/28/35, a 2-second clip of the still panning) and reads the payload back: bit
accuracy over the 48 embedded bits and the share of files whose payload reads back exactly. False
positives: DFDC validation real faces and every driving clip in the shared data, unmarked.

    python bench/watermark_robustness.py [--faces 40]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import sys
import tempfile

import numpy as np
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import config, media, provenance, watermark  # noqa: E402


def jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def half(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize((rgb.shape[1] // 2, rgb.shape[0] // 2), Image.BILINEAR))


def h264(rgb: np.ndarray, payload: int, crf: int, workdir: pathlib.Path) -> tuple[list[np.ndarray], float]:
    """Frames read back from a 2 s clip (the still panning, each frame marked) and its video bitrate."""
    path = workdir / f"clip-{crf}.mp4"
    writer = media.VideoWriter(path, 25.0, crf=crf)
    height, width = rgb.shape[:2]
    crop = (width * 3) // 4 // 2 * 2
    for step in range(50):
        left = (width - crop) * step // 49
        writer.write(watermark.embed(np.ascontiguousarray(rgb[: height // 2 * 2, left:left + crop]), payload))
    writer.close()
    return list(media.iter_video_frames(path)), path.stat().st_size * 8 / 2.0


def bit_accuracy(correlations: np.ndarray, payload: int) -> float:
    return float(((correlations > 0) == (watermark.bits_of(payload) > 0)).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=40)
    args = parser.parse_args()
    data = config.shared_dir() / "data"
    stills = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((data / "video" / "source").glob("*.jpg"))]
    faces = [np.asarray(Image.open(p).convert("RGB").resize((512, 512), Image.BICUBIC))
             for p in sorted((data / "dfdc-faces" / "val" / "fake").glob("*.jpg"))[: args.faces]]
    images = stills + faces
    changes = {"none": lambda a: a, "JPEG 90": lambda a: jpeg(a, 90), "JPEG 70": lambda a: jpeg(a, 70),
               "JPEG 50": lambda a: jpeg(a, 50), "resize 0.5x": half, "resize 0.5x + JPEG 70": lambda a: jpeg(half(a), 70)}
    print(f"{len(stills)} stills and {len(faces)} DFDC faces; strength {watermark.STRENGTH} chroma levels; "
          f"PSNR of the mark on the first still: "
          f"{10 * np.log10(255 ** 2 / np.mean((watermark.embed(stills[0], 1).astype(float) - stills[0]) ** 2)):.1f} dB")
    print(f"{'transformation':<24} {'bit accuracy':>12} {'payload exact':>14}")
    for name, change in changes.items():
        accuracies, exact = [], 0
        for index, rgb in enumerate(images):
            payload = watermark.payload_for(f"bench-{index}")
            correlations = watermark.correlations(change(watermark.embed(rgb, payload)))
            accuracies.append(bit_accuracy(correlations, payload))
            reading = watermark.read([correlations])
            exact += reading.marked and reading.payload == payload
        print(f"{name:<24} {np.mean(accuracies):>12.4f} {exact / len(images):>14.3f}")
    with tempfile.TemporaryDirectory() as tmp:
        for crf in (23, 28, 35):
            accuracies, exact, rates = [], 0, []
            for index, rgb in enumerate(stills):
                payload = watermark.payload_for(f"video-{index}")
                frames, bitrate = h264(rgb, payload, crf, pathlib.Path(tmp))
                rates.append(bitrate)
                single = [watermark.correlations(frame) for frame in frames]
                accuracies.append(np.mean([bit_accuracy(c, payload) for c in single]))
                reading = watermark.read(single)
                exact += reading.marked and reading.payload == payload
            print(f"{'H.264 crf ' + str(crf) + f' ({np.mean(rates) / 1000:.0f} kb/s)':<24} "
                  f"{np.mean(accuracies):>12.4f} {exact / len(stills):>14.3f}   (bits per frame; payload over the clip)")
    reals = sorted((data / "dfdc-faces" / "val" / "real").glob("*.jpg"))
    false_images = sum(watermark.read_image(np.asarray(Image.open(p).convert("RGB"))).marked for p in reals)
    clips = sorted((data / "video" / "driving").glob("*.mp4"))
    false_clips = sum(provenance.verify(p)["watermark"]["marked"] for p in clips)
    print(f"false positives: {false_images} of {len(reals)} DFDC real faces, {false_clips} of {len(clips)} shared clips")


if __name__ == "__main__":
    main()
