"""Face sets for face swap training: aligned faces of one person, extracted from a video or a folder
of images, with where each came from and a consent attestation.

A face set folder holds ``faces/NNNNNN.png`` (aligned crops) and ``faceset.json``: the source, the
consent record, the crop size and coverage, and per face the source frame (or file) and the 2x3
frame-to-crop transform. Frames are dropped when they have no confident face, when the face is much
blurrier than the set's median (variance of the Laplacian), or when it nearly repeats the last kept
face (mean difference of small grey thumbnails).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import pathlib
from typing import Iterable, Iterator

import numpy as np
from PIL import Image

from dfp import alignment, media
from dfp import faces as faces_lib

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
MIN_FACE_SIDE = 40
MIN_CONFIDENCE = 0.95
BLUR_FRACTION = 0.35  # dropped below this fraction of the median sharpness
DUPLICATE_THRESHOLD = 2.0  # mean abs difference of 16x16 grey thumbnails, in 0-255 levels


class FaceSetError(ValueError):
    """The input cannot make a usable face set; the message says why."""


@dataclasses.dataclass(frozen=True)
class Consent:
    """Who attests that the person shown agreed to this use, and how."""

    attested_by: str
    statement: str

    def record(self) -> dict:
        if not self.attested_by.strip() or not self.statement.strip():
            raise FaceSetError("a consent attestation needs who attests it and a statement of the person's consent")
        return {"attested_by": self.attested_by, "statement": self.statement,
                "recorded_at": dt.datetime.now(dt.timezone.utc).isoformat()}


def sharpness(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image."""
    grey = rgb.astype(np.float32).mean(axis=2)
    laplacian = (grey[1:-1, :-2] + grey[1:-1, 2:] + grey[:-2, 1:-1] + grey[2:, 1:-1] - 4 * grey[1:-1, 1:-1])
    return float(laplacian.var())


def thumbnail(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L").resize((16, 16), Image.BILINEAR), dtype=np.float32)


def _frames(source: pathlib.Path) -> Iterator[tuple[str, np.ndarray]]:
    if source.is_dir():
        files = sorted(p for p in source.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            yield path.name, media.decode_image(path, 50_000_000)
    else:
        for index, rgb in enumerate(media.iter_video_frames(source)):
            yield f"frame:{index}", rgb


def extract(source: pathlib.Path, out: pathlib.Path, consent: Consent, size: int = 128, coverage: float = 1.6,
            every: int = 1, limit: int = 0, frames: Iterable[tuple[str, np.ndarray]] | None = None,
            detector: faces_lib.FaceDetector | None = None) -> dict:
    """Extract the face set of ``source`` (a video, or a folder of images) into ``out``."""
    consent_record = consent.record()
    if not 32 <= size <= 512:
        raise FaceSetError(f"size must be 32 to 512 pixels, got {size}")
    detector = detector or faces_lib.FaceDetector()
    candidates = []
    seen = 0
    for position, (origin, rgb) in enumerate(frames if frames is not None else _frames(source)):
        seen = position + 1
        if position % every:
            continue
        found = [f for f in detector.detect(rgb) if f.side >= MIN_FACE_SIDE and f.confidence >= MIN_CONFIDENCE]
        if not found:
            continue
        face = max(found, key=lambda f: f.side)
        aligned = alignment.align_face(rgb, face.landmarks, size, coverage)
        candidates.append((origin, aligned, sharpness(aligned.image)))
        if limit and len(candidates) >= limit:
            break
    if not candidates:
        raise FaceSetError(f"no face found in {source}: a face set needs a clearly visible face")
    median = float(np.median([c[2] for c in candidates]))
    kept, dropped_blurry, dropped_duplicate = [], 0, 0
    last = None
    for origin, aligned, sharp in candidates:
        if sharp < BLUR_FRACTION * median:
            dropped_blurry += 1
            continue
        thumb = thumbnail(aligned.image)
        if last is not None and np.abs(thumb - last).mean() < DUPLICATE_THRESHOLD:
            dropped_duplicate += 1
            continue
        kept.append((origin, aligned))
        last = thumb

    faces_dir = out / "faces"
    faces_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for index, (origin, aligned) in enumerate(kept):
        name = f"{index:06d}.png"
        Image.fromarray(aligned.image).save(faces_dir / name)
        entries.append({"file": f"faces/{name}", "origin": origin, "matrix": aligned.matrix.round(6).tolist()})
    manifest = {
        "source": source.name,
        "source_frames": seen,
        "consent": consent_record,
        "size": size,
        "coverage": coverage,
        "faces": entries,
        "dropped": {"blurry": dropped_blurry, "duplicate": dropped_duplicate},
    }
    tmp = out / "faceset.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    tmp.replace(out / "faceset.json")
    return manifest


def load(folder: pathlib.Path, min_faces: int = 1) -> tuple[dict, np.ndarray]:
    """The manifest and the faces (N, S, S, 3) uint8 of a face set; refuses one without consent."""
    manifest_path = folder / "faceset.json"
    if not manifest_path.exists():
        raise FaceSetError(f"{folder} is not a face set (no faceset.json)")
    manifest = json.loads(manifest_path.read_text())
    consent = manifest.get("consent") or {}
    if not consent.get("attested_by") or not consent.get("statement"):
        raise FaceSetError(f"{folder} has no consent attestation; face sets without one cannot be used")
    if len(manifest["faces"]) < min_faces:
        raise FaceSetError(f"{folder} has {len(manifest['faces'])} faces; at least {min_faces} are needed")
    faces = np.stack([np.asarray(Image.open(folder / entry["file"]).convert("RGB")) for entry in manifest["faces"]])
    return manifest, faces
