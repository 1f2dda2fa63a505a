"""EnhancementService.Enhance through the gateway: a job that the enhancer service runs over stored media."""

import io

import av
import grpc
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from dfp import provenance
from dfp.client import ApiError, job_metadata, operation_result
from dfp.v1 import enhancement_pb2, jobs_pb2
from tests.helpers import short_clip_with_audio


@pytest.fixture(scope="module")
def client_module(stack):
    from dfp.client import Client

    with Client(stack.gateway_target, timeout_s=120, token=stack.token) as c:
        yield c


def _upload_png(client, tmp_path, width, height, name="photo.png"):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (height, width, 3), np.uint8)).save(tmp_path / name)
    return client.upload(tmp_path / name)


def test_an_image_is_enhanced_into_a_new_labelled_media_item(client_module, shared, tmp_path):
    # A real portrait: noise would hide the invisible watermark at this small size.
    Image.open(shared / "video" / "source" / "s0.jpg").convert("RGB").resize((40, 32)).save(tmp_path / "portrait.png")
    source = client_module.upload(tmp_path / "portrait.png")
    operation = client_module.enhance(source.name, model="srvgg-x4", scale=3)
    final = client_module.wait_operation(operation.name, timeout_s=300)
    result = operation_result(final, enhancement_pb2.EnhanceResponse)
    assert (result.width, result.height, result.frames, result.model, result.scale) == (120, 96, 1, "srvgg-x4", 3)
    assert job_metadata(final).state == jobs_pb2.SUCCEEDED

    stored = client_module.get_media(result.result_media)
    assert (stored.width, stored.height) == (120, 96)
    assert stored.labels["dfp_synthetic"] == "true" and stored.labels["dfp_generator"] == "enhance:srvgg-x4"
    client_module.download(result.result_media, tmp_path / "out.png")
    marks = provenance.verify(tmp_path / "out.png")
    assert marks["synthetic_tag"] and marks["watermark"]["marked"]
    assert marks["tags"]["dfp_operation"] == operation.name


def test_a_video_keeps_every_frame_its_rate_and_audio(client_module, shared, tmp_path):
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "clip.mp4", frames=6, size=32)
    source = client_module.upload(tmp_path / "clip.mp4")
    final = client_module.wait_operation(client_module.enhance(source.name, model="srvgg-x4", scale=2).name,
                                         timeout_s=300)
    result = operation_result(final, enhancement_pb2.EnhanceResponse)
    assert (result.frames, result.width) == (6, 64)
    assert job_metadata(final).items_done == 6
    client_module.download(result.result_media, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.streams.video[0].frames == 6
        assert float(container.streams.video[0].average_rate) == pytest.approx(source.frame_rate)
        assert len(container.streams.audio) == 1


def test_the_face_model_restores_the_face_of_a_portrait(client_module, shared, tmp_path):
    Image.open(shared / "video" / "source" / "s0.jpg").convert("RGB").resize((96, 112)).save(tmp_path / "face.png")
    source = client_module.upload(tmp_path / "face.png")
    final = client_module.wait_operation(client_module.enhance(source.name, model="face", scale=2).name, timeout_s=300)
    result = operation_result(final, enhancement_pb2.EnhanceResponse)
    assert (result.width, result.height, result.model) == (192, 224, "face")
    assert client_module.get_media(result.result_media).labels["dfp_generator"] == "enhance:face"


def test_the_cli_enhances_a_local_file_and_downloads_the_result(stack, tmp_path):
    from dfp.cli.main import cli

    Image.new("RGB", (16, 12), (200, 120, 40)).save(tmp_path / "small.jpg")
    result = CliRunner().invoke(cli, ["enhance", str(tmp_path / "small.jpg"), "--model", "srvgg-x4", "--scale", "2",
                                      "--out", str(tmp_path / "big.png"), "--quiet", "--server", stack.gateway_target],
                                env={"DFP_TOKEN": stack.token})
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "big.png").size == (32, 24)


@pytest.mark.parametrize("kwargs, code, words", [
    ({"model": "gan-x8"}, grpc.StatusCode.INVALID_ARGUMENT, "unknown model"),
    ({"scale": 5}, grpc.StatusCode.INVALID_ARGUMENT, "scale must be 2, 3 or 4"),
])
def test_bad_options_are_refused_at_once(client_module, tmp_path, kwargs, code, words):
    source = _upload_png(client_module, tmp_path, 8, 8)
    with pytest.raises(ApiError) as error:
        client_module.enhance(source.name, **{"model": "srvgg-x4", **kwargs})
    assert error.value.code == code and words in error.value.message


def test_unknown_media_is_not_found(client_module):
    with pytest.raises(ApiError) as error:
        client_module.enhance("media/abcdefghijklmnopqrstuvwxyz")
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_a_result_over_the_stored_pixel_limit_is_refused_before_queueing(client_module, tmp_path):
    # 4000x4000 x4 would be 256 megapixels, over the 50-megapixel limit for a stored image.
    buffer = io.BytesIO()
    Image.new("RGB", (4000, 4000), (10, 20, 30)).save(buffer, "PNG")
    (tmp_path / "large.png").write_bytes(buffer.getvalue())
    source = client_module.upload(tmp_path / "large.png")
    with pytest.raises(ApiError) as error:
        client_module.enhance(source.name, scale=4)
    assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "smaller scale" in error.value.message
