"""`dfp creator animate`: arrays used as given with their raw outputs saved, and media files
face-cropped, animated and written as a labelled video with the driving clip's audio."""

import json
import pathlib

import av
import numpy as np
import torch
from click.testing import CliRunner

from dfp.cli.main import cli
from services.creator import checkpoints
from services.creator.pipelines.fomm_animation import FommAnimator
from tests.creator.test_fomm_archs import randomised, tiny_config

HERE = pathlib.Path(__file__).parent


def _tiny_checkpoint(path: pathlib.Path) -> checkpoints.FommModel:
    model = randomised(checkpoints.build_networks(tiny_config()), seed=3)
    checkpoints.save_checkpoint(model, path)
    return model


def test_arrays_in_give_the_published_outputs_as_float32_arrays(tmp_path):
    model = _tiny_checkpoint(tmp_path / "cpk.pth.tar")
    rng = np.random.default_rng(0)
    source = rng.random((32, 32, 3), dtype=np.float32)
    driving = rng.random((6, 32, 32, 3), dtype=np.float32)
    np.save(tmp_path / "s.npy", source)
    np.save(tmp_path / "d.npy", driving)
    result = CliRunner().invoke(cli, [
        "creator", "animate", "--config", str(HERE / "tiny_fomm.yaml"), "--checkpoint", str(tmp_path / "cpk.pth.tar"),
        "--source", str(tmp_path / "s.npy"), "--driving", str(tmp_path / "d.npy"), "--out", str(tmp_path / "o.mp4"),
        "--mode", "absolute", "--save-arrays", str(tmp_path / "o.npz"), "--batch-size", "4",
    ])
    assert result.exit_code == 0, result.output
    arrays = np.load(tmp_path / "o.npz")
    shapes = {name: arrays[name].shape for name in arrays.files}
    assert shapes == {"prediction": (6, 32, 32, 3), "deformed": (6, 32, 32, 3), "occlusion_map": (6, 16, 16),
                      "kp_source_value": (4, 2), "kp_source_jacobian": (4, 2, 2), "kp_driving_value": (6, 4, 2),
                      "kp_driving_jacobian": (6, 4, 2, 2)}
    assert all(arrays[name].dtype == np.float32 for name in arrays.files)

    animator = FommAnimator(model)
    expected = animator.animate_batch(animator.prepare(source, driving[0], "absolute"), driving)
    np.testing.assert_allclose(arrays["prediction"], expected.prediction, atol=1e-5)
    with torch.inference_mode():
        kp = model.kp_detector(torch.from_numpy(source).permute(2, 0, 1)[None])
    np.testing.assert_allclose(arrays["kp_source_value"], kp["value"][0].numpy(), atol=1e-6)

    with av.open(str(tmp_path / "o.mp4")) as container:
        assert container.metadata.get("dfp_synthetic") == "true"
        assert container.streams.video[0].frames == 6


def test_portrait_and_talking_head_clip_give_a_pasted_back_video_with_the_clip_audio(tmp_path, shared):
    _tiny_checkpoint(tmp_path / "cpk.pth.tar")
    driving = shared / "video" / "driving" / "d12.mp4"
    result = CliRunner().invoke(cli, [
        "creator", "animate", "--config", str(HERE / "tiny_fomm.yaml"), "--checkpoint", str(tmp_path / "cpk.pth.tar"),
        "--source", str(shared / "video" / "source" / "s0.jpg"), "--driving", str(driving),
        "--out", str(tmp_path / "o.mp4"), "--save-arrays", str(tmp_path / "o.npz"), "--batch-size", "16",
    ])
    assert result.exit_code == 0, result.output
    with av.open(str(driving)) as original:
        frames = original.streams.video[0].frames
    from PIL import Image

    width, height = Image.open(shared / "video" / "source" / "s0.jpg").size
    with av.open(str(tmp_path / "o.mp4")) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (width // 2 * 2, height // 2 * 2)
        assert len(container.streams.audio) == 1
        assert container.metadata.get("dfp_synthetic") == "true"
        assert video.frames == frames
    # Full resolution (the default for media): the face is animated at the source crop's own size,
    # the deformed source too, while the occlusion map stays at the model's motion resolution.
    arrays = np.load(tmp_path / "o.npz")
    side = arrays["prediction"].shape[1]
    assert side > 32 and side % 8 == 0
    assert arrays["prediction"].shape == arrays["deformed"].shape == (frames, side, side, 3)
    assert arrays["occlusion_map"].shape[1] < 32


def test_plain_path_animates_media_at_the_model_frame_size(tmp_path, shared):
    _tiny_checkpoint(tmp_path / "cpk.pth.tar")
    result = CliRunner().invoke(cli, [
        "creator", "animate", "--config", str(HERE / "tiny_fomm.yaml"), "--checkpoint", str(tmp_path / "cpk.pth.tar"),
        "--source", str(shared / "video" / "source" / "s0.jpg"), "--driving", str(shared / "video" / "driving" / "d0.mp4"),
        "--out", str(tmp_path / "o.mp4"), "--save-arrays", str(tmp_path / "o.npz"), "--plain",
    ])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "o.npz")["prediction"].shape[1:] == (32, 32, 3)


def test_mixing_an_array_with_a_media_file_is_a_usage_error(tmp_path, shared):
    _tiny_checkpoint(tmp_path / "cpk.pth.tar")
    np.save(tmp_path / "s.npy", np.zeros((32, 32, 3), np.float32))
    result = CliRunner().invoke(cli, [
        "creator", "animate", "--config", str(HERE / "tiny_fomm.yaml"), "--checkpoint", str(tmp_path / "cpk.pth.tar"),
        "--source", str(tmp_path / "s.npy"), "--driving", str(shared / "video" / "driving" / "d0.mp4"),
        "--out", str(tmp_path / "o.mp4"),
    ])
    assert result.exit_code == 2
    assert "both be .npy" in result.output


def test_creator_evaluate_finds_the_full_resolution_path_sharper_than_the_plain_one(shared, tmp_path):
    sheet = tmp_path / "sheet.jpg"
    result = CliRunner().invoke(cli, ["creator", "evaluate", "--source", str(shared / "video" / "source" / "s0.jpg"),
                                  "--driving", str(shared / "video" / "driving" / "d0.mp4"), "--max-frames", "4",
                                  "--sheet", str(sheet), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])["summary"]
    assert summary["full_resolution"]["sharpness_ratio"] > 3 * summary["plain"]["sharpness_ratio"]
    assert sheet.stat().st_size > 0
