"""A tiny training run on a small, separable dataset: seconds, and clearly better than chance."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from services.detector import archs, scoring
from services.detector.training import dataset as datasets
from services.detector.weights import load_h5_weights


def make_dataset(root, n_train=48, n_val=16):
    """Real faces are bluish, fake ones reddish: separable by colour, which a Meso net learns fast."""
    rng = np.random.default_rng(0)
    rows = []
    for split, count in (("train", n_train), ("val", n_val)):
        for i in range(count):
            label = "fake" if i % 2 else "real"
            base = np.array([170, 90, 90] if label == "fake" else [90, 90, 170], np.float32)
            pixels = np.clip(base + rng.normal(0, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            path = f"{split}/{label}/{i}.png"
            (root / split / label).mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels).save(root / path)
            rows.append({"path": path, "label": label, "split": split, "source_video": f"{split}-{i // 2}"})
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, ["path", "label", "split", "source_video"])
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture()
def separable(tmp_path, monkeypatch):
    monkeypatch.setenv("DFP_CACHE_DIR", str(tmp_path / "cache"))
    return make_dataset(tmp_path / "data")


def dfp(*args, env=None):
    result = subprocess.run([sys.executable, "-m", "dfp.cli.main", *args], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_tiny_training_run_beats_chance_and_resumes(separable, tmp_path):
    import os

    env = {**os.environ}
    out = tmp_path / "run"
    common = ["--data", str(separable), "--arch", "meso4", "--out", str(out), "--batch-size", "16", "--seed", "7"]
    first = json.loads(dfp("detector", "train", *common, "--epochs", "2", "--json", env=env))
    assert first["epochs_done"] == 2
    resumed = json.loads(dfp("detector", "train", *common, "--epochs", "5", "--resume", "--json", env=env))
    assert resumed["epochs_done"] >= 3, "resume continues from the last finished epoch"
    state = json.loads((out / "state.json").read_text())
    assert [h["epoch"] for h in state["history"]] == list(range(1, resumed["epochs_done"] + 1))
    run = json.loads((out / "run.json").read_text())
    assert run["data"]["train"] == {"n_real": 24, "n_fake": 24} and len(run["data"]["labels_sha256"]) == 64

    model = archs.build("meso4")
    load_h5_weights(model, out / "best.h5")
    metrics = json.loads(dfp("detector", "evaluate", "--data", str(separable), "--weights", str(out / "best.h5"), "--json",
                             env=env))
    assert metrics["auc"] >= 0.9, metrics
    assert metrics["n_real"] == 8 and metrics["n_fake"] == 8
    assert scoring.arch_for_weights(out / "best.h5") == "meso4"


def test_a_trained_run_registers_calibrated_with_its_card(separable, tmp_path, s3):
    import os

    out = tmp_path / "run"
    env = {**os.environ, **s3.env(), "DFP_BUCKET_PREFIX": "trainreg"}
    dfp("detector", "train", "--data", str(separable), "--arch", "meso4", "--out", str(out), "--batch-size", "16",
        "--epochs", "2", env=env)
    registered = json.loads(dfp("detector", "register", "--run", str(out), "--name", "tiny", "--publish",
                                "--mirror-average", "--json", env=env))
    assert registered["version"] == 1 and registered["published"]
    card = json.loads(dfp("models", "list", "tiny", "--json", env=env).splitlines()[0])
    assert card["kind"] == "detector" and card["architecture"] == "meso4"
    assert set(card["calibration"]) == {"method", "a", "b"} and card["inference"] == {"mirror_average": True}
    assert card["metrics"]["val_raw_single_view"]["n_fake"] == 8
    assert card["data"]["val"] == {"n_real": 8, "n_fake": 8}
    assert any(f["path"] == "saved_model.pb" for f in card["files"])


def test_a_fine_tuned_run_card_lists_the_run_it_started_from(separable, tmp_path):
    from services.detector.training.card import calibrated_card

    common = ["--data", str(separable), "--arch", "meso4", "--batch-size", "16", "--epochs", "1"]
    dfp("detector", "train", *common, "--out", str(tmp_path / "first"))
    dfp("detector", "train", *common, "--out", str(tmp_path / "second"), "--finetune-from", str(tmp_path / "first" / "best.h5"),
        "--lr-schedule", "cosine", "--no-pair-batches")
    _, _, card = calibrated_card(tmp_path / "second", None, "test")
    assert card["training"]["lr_schedule"] == "cosine" and card["training"]["pair_batches"] is False
    first = card["training"]["started_from"]
    assert first["pair_batches"] is True and [h["epoch"] for h in first["history"]] == [1]
    assert first["started_from"] is None


def test_a_source_video_in_two_splits_is_refused(separable):
    with open(separable / "labels.csv", "a") as f:
        f.write("val/real/0.png,real,val,train-0\n")
    with pytest.raises(ValueError, match="grouped by source video"):
        datasets.read_labels(separable)
