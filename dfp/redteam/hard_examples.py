"""Hard-example training data from a red-team run: the fakes a detector missed, fed back into training,
with a held-out creation method kept aside to measure whether the detector got better at fakes of a
kind it never trained on.

The dataset written is an ordinary detector dataset (labels.csv: path, label, split, source_video;
paths may be absolute), so `dfp detector train/evaluate/register` use it unchanged:
- train: a class-balanced subset of the base dataset's train split, plus the missed fakes of the
  training methods (repeated `oversample` times) and the faces of the real clips that no held-out
  fake was made from;
- val: the base dataset's validation split (early stopping), as given;
- test: every fake of the held-out methods (all enhancements) and the real clips they were made from.
"""

from __future__ import annotations

import csv
import dataclasses
import pathlib

from PIL import Image

from dfp.redteam.report import frame_crops, scored_frames
from services.detector.training.dataset import FAKE, LABELS_FILE, read_labels


@dataclasses.dataclass(frozen=True)
class HardExampleSettings:
    detector: str  # the detector key in the run, for example "detector" or "meso4@v1"
    holdout_methods: tuple[str, ...]
    threshold: float = 0.5
    base_train: int = 2000
    base_val: int = 0  # 0 keeps the whole validation split
    oversample: int = 4


def build(run_folder: pathlib.Path, state: dict, base_data: pathlib.Path, out: pathlib.Path,
          settings: HardExampleSettings) -> dict:
    """Writes the dataset into `out` (images/ and labels.csv); returns what went where."""
    variants = state["plan"]["variants"]
    methods = {v["kind"] for v in variants if v["kind"] != "real"}
    unknown = set(settings.holdout_methods) - methods
    if unknown or not settings.holdout_methods:
        raise ValueError(f"held-out methods must be some of the run's methods ({', '.join(sorted(methods))}); "
                         f"got {', '.join(settings.holdout_methods) or 'none'}")
    if not methods - set(settings.holdout_methods):
        raise ValueError("every creation method is held out: nothing is left to train on")
    if not any(key.startswith(f"detect/{settings.detector}/") for key in state["steps"]):
        raise ValueError(f"the run has no scores from detector {settings.detector!r}")
    heldout_clips = {v["clip"] for v in variants if v["kind"] in settings.holdout_methods}

    chosen: list[tuple[dict, str, str, str]] = []  # frame, label, split, source video
    missed = 0
    for variant in variants:
        group = f"redteam/{variant['item']}"
        for frame in scored_frames(state, settings.detector, variant):
            if variant["kind"] == "real":
                chosen.append((frame, "real", "test" if variant["clip"] in heldout_clips else "train", group))
            elif variant["kind"] in settings.holdout_methods:
                chosen.append((frame, "fake", "test", group))
            elif frame["score"] < settings.threshold:
                missed += 1
                chosen.extend([(frame, "fake", "train", group)] * settings.oversample)

    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    unique = list({(f["variant"], f["frame_index"]): f for f, *_ in chosen}.values())
    paths = {}
    for number, (frame, crop) in enumerate(zip(unique, frame_crops(run_folder, unique))):
        path = images / f"{number:05d}.png"
        Image.fromarray(crop).save(path)
        paths[(frame["variant"], frame["frame_index"])] = path.relative_to(out).as_posix()

    rows = [{"path": paths[(f["variant"], f["frame_index"])], "label": label, "split": split, "source_video": group}
            for f, label, split, group in chosen]
    base = [s for s in read_labels(base_data) if s.split in ("train", "val")]
    for split, limit in (("train", settings.base_train), ("val", settings.base_val)):
        samples = [s for s in base if s.split == split]
        if limit:
            samples = ([s for s in samples if s.fake != FAKE][:limit // 2] + [s for s in samples if s.fake == FAKE][:limit // 2])
        rows += [{"path": str((base_data / s.path).resolve()), "label": "fake" if s.fake == FAKE else "real",
                  "split": split, "source_video": f"base/{s.source_video}"} for s in samples]
    with open(out / LABELS_FILE, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split", "source_video"])
        writer.writeheader()
        writer.writerows(rows)

    def count(split: str, label: str) -> int:
        return sum(1 for r in rows if r["split"] == split and r["label"] == label)

    return {"dataset": str(out), "detector": settings.detector, "holdout_methods": list(settings.holdout_methods),
            "missed_fakes": missed, "train_rows_from_missed_fakes": missed * settings.oversample,
            "counts": {split: {"real": count(split, "real"), "fake": count(split, "fake")}
                       for split in ("train", "val", "test")}}
