"""Hard-example datasets from a run's scores: which frames go where, with a known answer."""

import csv

import numpy as np
import pytest

from dfp import media
from dfp.redteam import hard_examples
from services.detector.training.dataset import read_labels


def _variant(kind, item, clip, model="none", scale=1):
    enhancement = "none" if model == "none" else f"{model}@x{scale}"
    return {"key": f"{item}/{enhancement}", "kind": kind, "item": item, "clip": clip,
            "enhancement": {"model": model, "scale": scale}}


@pytest.fixture()
def run(tmp_path):
    """A finished run's folder: two animations (one missed twice, one caught), one face swap of clip
    d6, real clips d0 and d6; every variant a 3-frame video in media/."""
    variants = [_variant("animation", "animation/s0/d0", "d0"), _variant("animation", "animation/s1/d0", "d0"),
                _variant("face_swap", "face_swap/d6", "d6"), _variant("real", "real/d0", "d0"),
                _variant("real", "real/d6", "d6")]
    scores = {"animation/s0/d0/none": [0.1, 0.3, None], "animation/s1/d0/none": [0.9, 0.8, 0.7],
              "face_swap/d6/none": [0.2, 0.6, 0.4], "real/d0/none": [0.1, 0.2, 0.3], "real/d6/none": [0.2, None, 0.1]}
    (tmp_path / "media").mkdir()
    steps = {}
    for variant in variants:
        writer = media.VideoWriter(tmp_path / "media" / f"{variant['key'].replace('/', '__')}.mp4", 10)
        for value in (40, 120, 200):
            writer.write(np.full((64, 64, 3), value, np.uint8))
        writer.close()
        steps[f"detect/det/{variant['key']}"] = {"result": {"model": {"name": "det", "version": 1}, "frames": [
            {"frame_index": i, "score": s, "box": None if s is None else [8, 8, 56, 56]}
            for i, s in enumerate(scores[variant["key"]])]}}
    return tmp_path, {"fingerprint": "f", "steps": steps, "plan": {"variants": variants, "items": {}, "inputs": {}}}


def test_missed_fakes_train_and_the_held_out_method_with_its_clips_tests(run, shared, tmp_path):
    folder, state = run
    settings = hard_examples.HardExampleSettings(detector="det", holdout_methods=("face_swap",), base_train=4,
                                                 oversample=3)
    summary = hard_examples.build(folder, state, shared / "dfdc-faces", tmp_path / "hard", settings)
    with open(tmp_path / "hard" / "labels.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["source_video"].startswith("redteam/")]
    by_split = {}
    for row in rows:
        by_split.setdefault((row["split"], row["label"], row["source_video"]), []).append(row["path"])
    # The two missed frames of s0 (0.1, 0.3), three times each; s1 was caught and stays out.
    assert summary["missed_fakes"] == 2 and len(by_split[("train", "fake", "redteam/animation/s0/d0")]) == 6
    assert len(set(by_split[("train", "fake", "redteam/animation/s0/d0")])) == 2
    assert not any(key[2] == "redteam/animation/s1/d0" for key in by_split)
    # Real d0 trains; the swap's frames and its clip d6 (the frames with a face) are the test split.
    assert len(by_split[("train", "real", "redteam/real/d0")]) == 3
    assert len(by_split[("test", "fake", "redteam/face_swap/d6")]) == 3
    assert len(by_split[("test", "real", "redteam/real/d6")]) == 2
    assert summary["counts"]["test"] == {"real": 2, "fake": 3}
    assert summary["counts"]["train"] == {"real": 2 + 3, "fake": 2 + 6}
    assert len(read_labels(tmp_path / "hard")) > len(rows)  # the base rows are there, and splits stay grouped


def test_holding_out_every_method_is_refused(run, shared, tmp_path):
    folder, state = run
    settings = hard_examples.HardExampleSettings(detector="det", holdout_methods=("animation", "face_swap"))
    with pytest.raises(ValueError, match="nothing is left to train on"):
        hard_examples.build(folder, state, shared / "dfdc-faces", tmp_path / "hard", settings)
