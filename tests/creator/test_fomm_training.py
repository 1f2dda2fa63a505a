"""FOMM training on real clips: runs, resumes, evaluates against copying the source, and registers."""

import json
import time

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from dfp.cli.main import cli
from services.creator import checkpoints
from services.creator.serving.__main__ import _from_registry
from services.creator.training.clips import HOLDOUT_FRACTION, load_clips
from services.creator.training.losses import RandomTPS
from services.creator.training.train import StillPairSampler
from tests.creator.test_fomm_archs import HERE


@pytest.fixture(scope="module")
def clips_folder(tmp_path_factory, shared):
    """Two short talking-head clips."""
    folder = tmp_path_factory.mktemp("clips")
    for name in ("d0.mp4", "d18.mp4"):
        (folder / name).symlink_to(shared / "video" / "driving" / name)
    return folder


def test_clips_are_face_crops_with_the_last_fifth_held_out(clips_folder):
    clips = load_clips(clips_folder, 32)
    assert [c.name for c in clips] == ["d0", "d18"]
    for clip in clips:
        assert clip.frames.dtype == np.uint8 and clip.frames.shape[1:] == (32, 32, 3)
        assert len(clip.heldout_frames) == len(clip.frames) - round(len(clip.frames) * (1 - HOLDOUT_FRACTION))
        assert len(clip.train_frames) + len(clip.heldout_frames) == len(clip.frames)


def test_random_tps_jacobian_is_the_derivative_of_the_warp():
    transform = RandomTPS(2, sigma_affine=0.05, sigma_tps=0.005, points_tps=5, generator=torch.Generator().manual_seed(0))
    points = torch.rand(2, 3, 2) * 2 - 1
    jacobian = transform.jacobian(points)
    step = 1e-3
    for axis in range(2):
        shifted = points.clone()
        shifted[..., axis] += step
        numeric = (transform.warp_coordinates(shifted) - transform.warp_coordinates(points)) / step
        assert torch.allclose(jacobian[..., :, axis], numeric, atol=2e-3)


def test_training_runs_resumes_and_reports_heldout_l1_against_copying(clips_folder, tmp_path):
    run = tmp_path / "run"
    args = ["creator", "train", "--config", str(HERE / "tiny_fomm.yaml"), "--data", str(clips_folder),
            "--out", str(run), "--json"]
    first = CliRunner().invoke(cli, args + ["--steps", "2"])
    assert first.exit_code == 0, first.output
    metrics = json.loads(first.output.strip().splitlines()[-1])
    assert metrics["steps"] == 2
    assert metrics["heldout_frames"] == sum(v["frames"] for v in metrics["per_clip"].values())
    assert 0 < metrics["copy_source_l1"] < 1 and 0 < metrics["l1"] < 1
    assert torch.load(run / "checkpoint.pth.tar", weights_only=True)["step"] == 2

    second = CliRunner().invoke(cli, args + ["--steps", "3"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.output.strip().splitlines()[-1])["steps"] == 3
    assert [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()] == [2, 3]
    assert json.loads((run / "run.json").read_text())["command"].startswith("dfp ")
    checkpoints.load_model(run / "config.yaml", run / "checkpoint.pth.tar")


def test_still_pairs_are_a_face_and_the_same_face_under_a_random_warp(shared):
    folder = shared / "dfdc-faces" / "train" / "real"
    unwarped = StillPairSampler(folder, 4, 32, {"sigma_affine": 0.0, "sigma_tps": 0.0, "points_tps": 5}, seed=0)
    source, driving = unwarped.batch(3)
    assert source.shape == driving.shape == (3, 3, 32, 32) and 0 <= source.min() and source.max() <= 1
    assert torch.allclose(source, driving, atol=1e-4)

    warped = StillPairSampler(folder, 4, 32, {"sigma_affine": 0.1, "sigma_tps": 0.01, "points_tps": 5}, seed=0)
    source, driving = warped.batch(3)
    difference = (source - driving).abs().mean().item()
    assert 0.005 < difference < (source - source.roll(1, dims=0)).abs().mean().item()


def test_training_mixes_still_pairs_into_each_batch_when_the_config_asks(clips_folder, tmp_path):
    config = yaml.safe_load((HERE / "tiny_fomm.yaml").read_text())
    config["train_params"]["still_pairs"] = {"folder": "dfdc-faces/train/real", "count": 8, "share": 0.5,
                                             "transform_params": {"sigma_affine": 0.1, "sigma_tps": 0.01, "points_tps": 5}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = CliRunner().invoke(cli, ["creator", "train", "--config", str(tmp_path / "config.yaml"), "--data",
                                      str(clips_folder), "--out", str(tmp_path / "run"), "--steps", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["steps"] == 2


def test_a_trained_model_is_registered_with_its_card_and_served_from_the_registry(
        clips_folder, tmp_path, s3, monkeypatch):
    run = tmp_path / "run"
    trained = CliRunner().invoke(cli, ["creator", "train", "--config", str(HERE / "tiny_fomm.yaml"), "--data",
                                       str(clips_folder), "--out", str(run), "--steps", "1"])
    assert trained.exit_code == 0, trained.output
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DFP_BUCKET_PREFIX", f"c{time.monotonic_ns() % 10**8}")
    result = CliRunner().invoke(cli, ["creator", "register", "--run", str(run), "--name", "fomm-test", "--data",
                                      str(clips_folder), "--publish", "--json"])
    assert result.exit_code == 0, result.output
    registered = json.loads(result.output.strip().splitlines()[-1])
    assert registered["version"] == 1 and registered["published"]

    config, checkpoint = _from_registry("fomm-test", tmp_path / "served")
    model = checkpoints.load_model(config, checkpoint)
    assert model.frame_size == 32
    halves = torch.load(checkpoint, weights_only=True)["generator"]["final.weight"]
    assert halves.dtype == torch.float16
