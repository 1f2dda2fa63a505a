"""Enhancing files: labelled images, videos with their frame rate and audio, and refused bad input."""

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dfp import media, provenance
from dfp.cli.main import cli
from services.enhancer import tiling
from services.enhancer.pipelines.enhance_media import EnhanceOptions, enhance_file
from services.enhancer.upscaler import load_upscaler
from tests.helpers import mp4_without_frames, png_claiming_size, short_clip_with_audio


@pytest.fixture(scope="module")
def srvgg(shared):
    return load_upscaler(str(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth"), "cpu")


def test_an_image_comes_back_larger_and_labelled_as_enhanced(srvgg, tmp_path):
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 40, 3), np.uint8)).save(tmp_path / "in.jpg")
    result = enhance_file(srvgg, tmp_path / "in.jpg", tmp_path / "out.png", EnhanceOptions(scale=3))
    assert (result.kind, result.width, result.height) == ("image", 120, 90)
    marks = provenance.verify(tmp_path / "out.png")
    assert marks["synthetic_tag"] and marks["tags"]["dfp_generator"].startswith("enhance:")
    assert marks["watermark"]["marked"]


def test_a_video_keeps_its_frame_count_frame_rate_and_audio(srvgg, shared, tmp_path):
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "in.mp4", frames=5, size=32)
    seen = []
    result = enhance_file(srvgg, tmp_path / "in.mp4", tmp_path / "out.mp4",
                          EnhanceOptions(scale=2, frames_per_batch=2, tiles=tiling.TileOptions(tile=0)),
                          progress=lambda done, total: seen.append(done))
    assert (result.kind, result.frames, result.width, result.height) == ("video", 5, 64, 64)
    assert seen == [2, 4, 5]
    with av.open(str(tmp_path / "out.mp4")) as out, av.open(str(tmp_path / "in.mp4")) as source:
        assert out.streams.video[0].frames == 5
        assert out.streams.video[0].average_rate == source.streams.video[0].average_rate
        assert len(out.streams.audio) == 1
        assert out.metadata["dfp_synthetic"] == "true"


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(srvgg, tmp_path):
    (tmp_path / "bomb.png").write_bytes(png_claiming_size(60_000, 60_000))
    with pytest.raises(media.MediaTooLarge):
        enhance_file(srvgg, tmp_path / "bomb.png", tmp_path / "out.png", EnhanceOptions())
    assert not (tmp_path / "out.png").exists()


def test_a_result_over_the_output_limit_is_refused_before_any_work(srvgg, tmp_path):
    Image.new("RGB", (100, 100)).save(tmp_path / "in.png")
    with pytest.raises(media.MediaTooLarge, match="smaller scale"):
        enhance_file(srvgg, tmp_path / "in.png", tmp_path / "out.png", EnhanceOptions(max_output_pixels=100_000))


def test_a_video_with_no_frames_is_refused_and_leaves_nothing(srvgg, tmp_path):
    mp4_without_frames(tmp_path / "empty.mp4")
    with pytest.raises(media.InvalidMedia):
        enhance_file(srvgg, tmp_path / "empty.mp4", tmp_path / "out.mp4", EnhanceOptions())
    assert list(tmp_path.iterdir()) == [tmp_path / "empty.mp4"]


def test_the_cli_refuses_an_unsupported_scale_and_an_npy_of_the_wrong_shape(shared, tmp_path):
    np.save(tmp_path / "gray.npy", np.zeros((8, 8), np.float32))
    weights_file = str(shared / "weights" / "realesrgan" / "realesr-animevideov3.pth")
    result = CliRunner().invoke(cli, ["enhancer", "run", "--model", weights_file, "--scale", "5",
                                      str(tmp_path / "gray.npy"), str(tmp_path / "out.npy")])
    assert result.exit_code == 2 and "scale" in result.output
    result = CliRunner().invoke(cli, ["enhancer", "run", "--model", weights_file, str(tmp_path / "gray.npy"),
                                      str(tmp_path / "out.npy")], standalone_mode=False)
    assert isinstance(result.exception, media.InvalidMedia) and "HxWx3 float32" in str(result.exception)
    assert not (tmp_path / "out.npy").exists()
