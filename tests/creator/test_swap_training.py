"""Face swap training on two real face sets: runs, resumes, previews, measures held-out faces."""

import json

import torch
from click.testing import CliRunner

from dfp.cli.main import cli
from services.creator.swap_model import load_run
from services.creator.training.losses_swap import ssim, warped_batch


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


def test_training_runs_resumes_and_measures_each_decoder_on_held_out_faces(swap_facesets, tmp_path):
    run = tmp_path / "run"
    args = ["swap", "train", "--a", str(swap_facesets[0]), "--b", str(swap_facesets[1]), "--out", str(run),
            "--batch-size", "2", "--json"]
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


def test_a_face_set_too_small_is_refused(swap_facesets, tmp_path):
    small = tmp_path / "small"
    (small / "faces").mkdir(parents=True)
    manifest = json.loads((swap_facesets[0] / "faceset.json").read_text())
    manifest["faces"] = manifest["faces"][:3]
    for entry in manifest["faces"]:
        (small / entry["file"]).write_bytes((swap_facesets[0] / entry["file"]).read_bytes())
    (small / "faceset.json").write_text(json.dumps(manifest))
    result = CliRunner().invoke(cli, ["swap", "train", "--a", str(small), "--b", str(swap_facesets[1]), "--out",
                                      str(tmp_path / "run"), "--steps", "1"])
    assert result.exit_code == 1
    assert "at least 16" in str(result.exception)


def test_merge_swaps_every_face_keeps_the_frames_and_labels_the_video(swap_run, tmp_path, shared):
    import av

    target = shared / "video" / "driving" / "d0.mp4"
    result = CliRunner().invoke(cli, ["swap", "merge", "--run", str(swap_run), "--target", str(target), "--out",
                                      str(tmp_path / "swapped.mp4"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    with av.open(str(target)) as original:
        frames = original.streams.video[0].frames
    assert summary["frames"] == frames and summary["swapped_frames"] >= frames * 0.9
    with av.open(str(tmp_path / "swapped.mp4")) as container:
        assert container.metadata["dfp_synthetic"] == "true"
        assert container.streams.video[0].frames == frames
    from dfp import provenance, watermark

    mark = provenance.verify(tmp_path / "swapped.mp4")["watermark"]
    assert mark["marked"] and mark["payload"] == f"{watermark.payload_for('faceswap:' + swap_run.name):08x}"


def test_merge_onto_a_video_without_faces_is_refused_and_writes_nothing(swap_run, tmp_path):
    from tests.helpers import mp4_file

    mp4_file(tmp_path / "blank.mp4", frames=6, size=64)
    result = CliRunner().invoke(cli, ["swap", "merge", "--run", str(swap_run), "--target", str(tmp_path / "blank.mp4"),
                                      "--out", str(tmp_path / "out.mp4")])
    assert result.exit_code == 1 and "no face" in str(result.exception)
    assert not list(tmp_path.glob("out.mp4*"))


def test_a_corrupt_checkpoint_is_refused_with_the_reason_when_merging_resuming_or_registering(swap_run, swap_facesets,
                                                                                                tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(swap_run, run)
    checkpoint = run / "checkpoint.pth.tar"
    checkpoint.write_bytes(checkpoint.read_bytes()[:5000])
    (tmp_path / "x.mp4").write_bytes(b"")
    merged = CliRunner().invoke(cli, ["swap", "merge", "--run", str(run), "--target", str(tmp_path / "x.mp4"),
                                      "--out", str(tmp_path / "out.mp4")])
    assert merged.exit_code == 1 and "not a readable PyTorch checkpoint" in str(merged.exception)
    resumed = CliRunner().invoke(cli, ["swap", "train", "--a", str(swap_facesets[0]), "--b", str(swap_facesets[1]),
                                       "--out", str(run), "--steps", "3"])
    assert resumed.exit_code == 1 and "not a readable PyTorch checkpoint" in str(resumed.exception)
    registered = CliRunner().invoke(cli, ["swap", "register", "--run", str(run), "--name", "broken"])
    assert registered.exit_code == 1 and "not a readable PyTorch checkpoint" in str(registered.exception)
    assert not list(tmp_path.glob("out.mp4*"))


def test_registering_needs_an_evaluation_of_the_final_checkpoint(swap_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(swap_run, run)
    (run / "eval.json").unlink()
    result = CliRunner().invoke(cli, ["swap", "register", "--run", str(run), "--name", "unmeasured"])
    assert result.exit_code == 1 and "no evaluation of its checkpoint at step 2" in str(result.exception)


def test_seamless_clone_keeps_the_swapped_gradients_and_meets_the_original_at_the_mask_edge():
    import numpy as np

    from services.creator.pipelines.swap_media import seamless_clone

    rng = np.random.RandomState(0)
    original = rng.randint(0, 200, (48, 48, 3)).astype(np.uint8)
    mask = np.zeros((48, 48), np.float32)
    mask[8:40, 10:38] = 1
    brighter = original + np.uint8(40)  # the same face under other lighting: equal gradients
    assert np.array_equal(seamless_clone(brighter, original, mask), original)
    swapped = rng.randint(0, 255, (48, 48, 3)).astype(np.uint8)
    blended = seamless_clone(swapped, original, mask)
    assert np.array_equal(blended[mask < 0.5], original[mask < 0.5])
    inner = (slice(9, 39), slice(11, 37))
    gradient = np.diff(blended[inner].astype(int), axis=1) - np.diff(swapped[inner].astype(int), axis=1)
    assert np.abs(gradient).mean() < np.abs(np.diff(original[inner].astype(int), axis=1)
                                            - np.diff(swapped[inner].astype(int), axis=1)).mean() / 4
