"""Face datasets from a folder with a labels CSV (path, label, split, source_video).

Images go through `dfp.faces.resize_to_model_pixels`, the resize every serving path uses, once, and
are cached as uint8 arrays (a memory map per split and size under DFP_CACHE_DIR), keyed by the hash of
the labels file so a changed dataset is never read from a stale cache.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
from concurrent.futures import ThreadPoolExecutor
import pathlib

import numpy as np

from dfp import config
from dfp.faces import resize_to_model_pixels
from dfp.media import decode_image

LABELS_FILE = "labels.csv"
FAKE, REAL = 1, 0


@dataclasses.dataclass(frozen=True)
class Sample:
    path: str
    fake: int
    split: str
    source_video: str


@dataclasses.dataclass
class Split:
    """A split in memory: images uint8 [N, s, s, 3], `fake` labels [N] (1 = fake), and their samples."""

    name: str
    images: np.ndarray
    fake: np.ndarray
    samples: list[Sample]

    @property
    def counts(self) -> dict[str, int]:
        return {"n_real": int((self.fake == REAL).sum()), "n_fake": int((self.fake == FAKE).sum())}


def labels_sha256(root: pathlib.Path) -> str:
    return hashlib.sha256((root / LABELS_FILE).read_bytes()).hexdigest()


def read_labels(root: pathlib.Path) -> list[Sample]:
    """Reads the labels CSV; refuses unknown labels and source videos that appear in two splits."""
    samples = []
    with open(root / LABELS_FILE, newline="") as f:
        for row in csv.DictReader(f):
            label = row["label"].strip().lower()
            if label not in ("real", "fake"):
                raise ValueError(f"{row['path']}: label must be real or fake, got {row['label']!r}")
            samples.append(Sample(row["path"], FAKE if label == "fake" else REAL, row["split"], row.get("source_video", "")))
    split_of: dict[str, str] = {}
    for sample in samples:
        if not sample.source_video:
            continue
        seen = split_of.setdefault(sample.source_video, sample.split)
        if seen != sample.split:
            raise ValueError(f"source video {sample.source_video} is in splits {seen} and {sample.split}: "
                             "splits must be grouped by source video")
    return samples


def _load(args: tuple[str, int]) -> np.ndarray:
    path, size = args
    rgb = decode_image(path, max_pixels=50_000_000)
    return resize_to_model_pixels(rgb, size)


def load_split(root: pathlib.Path, split: str, size: int = 256, limit: int = 0, workers: int = 2) -> Split:
    """The split's images at `size`, cached; `limit` > 0 takes a class-balanced subset (for quick runs)."""
    root = pathlib.Path(root)
    samples = [s for s in read_labels(root) if s.split == split]
    if not samples:
        raise ValueError(f"{root / LABELS_FILE} has no samples in split {split!r}")
    if limit:
        per_class = max(1, limit // 2)
        samples = [s for s in samples if s.fake == REAL][:per_class] + [s for s in samples if s.fake == FAKE][:per_class]
    cache = config.cache_dir() / "datasets" / f"{labels_sha256(root)[:16]}-{split}-{size}-{limit or 'all'}.npy"
    if cache.exists():
        images = np.load(cache, mmap_mode="r")
    else:
        cache.parent.mkdir(parents=True, exist_ok=True)
        jobs = [(str(root / s.path), size) for s in samples]
        # Threads, not processes: decoding and resizing release the GIL, and nothing is re-imported.
        with ThreadPoolExecutor(workers) as pool:
            images = np.stack(list(pool.map(_load, jobs)))
        partial = cache.with_suffix(".partial.npy")
        np.save(partial, images)
        partial.rename(cache)
    return Split(split, images, np.array([s.fake for s in samples], np.int64), samples)
