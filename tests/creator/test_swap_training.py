"""Face swap training on two real face sets: runs, resumes, previews, measures held-out faces."""

import json

import pytest
import torch
from click.testing import CliRunner

from dfp.cli.main import cli
from services.creator.training.losses_swap import ssim, warped_batch
from services.creator.training.swap_train import load_run


@pytest.fixture(scope="module")
def facesets(shared, tmp_path_factory):
    root = tmp_path_factory.mktemp("facesets")
    for name, clip, every in (("a", "d18.mp4", 2), ("b", "d19.mp4", 2)):
        result = CliRunner().invoke(cli, ["swap", "extract", str(shared / "video" / "driving" / clip), "--out",
                                          str(root / name), "--size", "64", "--every", str(every),
                                          "--consent-by", "test suite", "--consent", "published research asset"])
        assert result.exit_code == 0, result.output
    return root / "a", root / "b"


def test_ssim_is_one_for_equal_images_and_lower_for_noise():
    image = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(image, image), torch.ones(2))
    assert (ssim(image, torch.rand(2, 3, 32, 32)) < 0.2).all()


def test_warped_inputs_differ_from_their_targets_and_masks_stay_in_range():
    faces = torch.rand(4, 3, 64, 64)
    warped, target, mask = warped_batch(faces, torch.Generator().manual_seed(0))
    assert warped.shape == target.shape == faces.shape and mask.shape == (4, 1, 64, 64)
    assert not torch.allclose(warped, target)
    assert 0 <= mask.min() and mask.max() <= 1 and mask.mean() > 0.2


def test_training_runs_resumes_and_measures_each_decoder_on_held_out_faces(facesets, tmp_path):
    run = tmp_path / "run"
    args = ["swap", "train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(run), "--batch-size", "2",
            "--json"]
    first = CliRunner().invoke(cli, args + ["--steps", "2"])
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(cli, args + ["--steps", "3"])
    assert second.exit_code == 0, second.output
    metrics = json.loads(second.output.strip().splitlines()[-1])
    assert metrics["steps"] == 3
    for identity in ("a", "b"):
        assert metrics["heldout"][identity]["faces"] > 0
        assert 0 < metrics["heldout"][identity]["l1"] < 1 and -1 < metrics["heldout"][identity]["ssim"] < 1
    assert (run / "preview.png").exists()
    model, settings = load_run(run)
    assert settings["facesets"]["a"]["consent"]["attested_by"] == "test suite"
    assert model(torch.rand(1, 3, 64, 64), "b")[0].shape == (1, 3, 64, 64)


def test_a_face_set_too_small_is_refused(facesets, tmp_path):
    small = tmp_path / "small"
    (small / "faces").mkdir(parents=True)
    manifest = json.loads((facesets[0] / "faceset.json").read_text())
    manifest["faces"] = manifest["faces"][:3]
    for entry in manifest["faces"]:
        (small / entry["file"]).write_bytes((facesets[0] / entry["file"]).read_bytes())
    (small / "faceset.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["swap", "train", "--a", str(small), "--b", str(facesets[1]), "--out",
                                      str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 1
    assert "at least 16" in str(result.exception)


def test_merge_swaps_every_face_keeps_the_frames_and_labels_the_video(facesets, tmp_path, shared):
    import av

    run = tmp_path / "run"
    trained = CliRunner().invoke(cli, ["swap", "train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out",
                                       str(run), "--batch-size", "2", "--steps", "1"])
    assert trained.exit_code == 0, trained.output
    target = shared / "video" / "driving" / "d0.mp4"
    result = CliRunner().invoke(cli, ["swap", "merge", "--run", str(run), "--target", str(target), "--out",
                                      str(tmp_path / "swapped.mp4"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    with av.open(str(target)) as original:
        frames = original.streams.video[0].frames
    assert summary["frames"] == frames and summary["swapped_frames"] >= frames * 0.9
    with av.open(str(tmp_path / "swapped.mp4")) as container:
        assert container.metadata["dfp_synthetic"] == "true"
        assert container.streams.video[0].frames == frames


def test_merge_onto_a_video_without_faces_is_refused_and_writes_nothing(facesets, tmp_path):
    from tests.helpers import mp4_file

    run = tmp_path / "run"
    CliRunner().invoke(cli, ["swap", "train", "--a", str(facesets[0]), "--b", str(facesets[1]), "--out", str(run),
                             "--batch-size", "2", "--steps", "1"])
    mp4_file(tmp_path / "blank.mp4", frames=6, size=64)
    result = CliRunner().invoke(cli, ["swap", "merge", "--run", str(run), "--target", str(tmp_path / "blank.mp4"),
                                      "--out", str(tmp_path / "out.mp4")])
    assert result.exit_code == 1 and "no face" in str(result.exception)
    assert not list(tmp_path.glob("out.mp4*"))
