"""Animation through the gateway: real S3, real TorchServe running the FOMM handler, real sockets."""

import av
import grpc
import pytest
from PIL import Image

from dfp.client import ApiError, OperationFailed, job_metadata, operation_result
from dfp.v1 import creation_pb2, jobs_pb2, media_pb2
from tests.helpers import jpeg_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def portrait_and_clip(client_module, shared):
    source = client_module.upload(shared / "video" / "source" / "s0.jpg")
    driving = client_module.upload(shared / "video" / "driving" / "d18.mp4")
    return source, driving


@pytest.fixture(scope="module")
def client_module(stack):
    from dfp.client import Client

    with Client(stack.gateway_target, timeout_s=120, token=stack.token) as c:
        yield c


def test_animation_job_stores_a_labelled_video_with_every_driving_frame_and_the_audio(
        client_module, portrait_and_clip, shared, tmp_path):
    source, driving = portrait_and_clip
    operation = client_module.animate_image(source.name, driving.name)
    states = []
    final = client_module.wait_operation(operation.name, timeout_s=600,
                                         on_update=lambda op: states.append(job_metadata(op)))
    result = operation_result(final, creation_pb2.AnimateImageResponse)
    assert result.frames == driving.frame_count
    assert result.has_audio
    assert result.model.name == "fomm"
    metadata = job_metadata(final)
    assert metadata.state == jobs_pb2.SUCCEEDED
    assert metadata.items_done == metadata.items_total == driving.frame_count
    assert any(0 < m.items_done < driving.frame_count for m in states if m.state == jobs_pb2.RUNNING)

    stored = client_module.get_media(result.result_media)
    assert stored.media_type == media_pb2.VIDEO
    assert stored.labels["dfp_synthetic"] == "true"
    assert stored.labels["dfp_operation"] == operation.name.split("/")[1]
    client_module.download(result.result_media, tmp_path / "out.mp4")
    width, height = Image.open(shared / "video" / "source" / "s0.jpg").size
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.metadata["dfp_synthetic"] == "true"
        video = container.streams.video[0]
        assert (video.width, video.height) == (width // 2 * 2, height // 2 * 2)
        assert video.frames == driving.frame_count
        assert len(container.streams.audio) == 1
    from dfp import provenance, watermark

    mark = provenance.verify(tmp_path / "out.mp4")["watermark"]
    assert mark["marked"] and mark["payload"] == f"{watermark.payload_for(operation.name):08x}"


def _returned_crop_size(client_module, portrait_and_clip, **kwargs):
    source, driving = portrait_and_clip
    operation = client_module.animate_image(source.name, driving.name, return_crop=True, mode="absolute", **kwargs)
    result = operation_result(client_module.wait_operation(operation.name, timeout_s=600),
                              creation_pb2.AnimateImageResponse)
    stored = client_module.get_media(result.result_media)
    return stored.width, stored.height


def test_return_crop_gives_the_face_crop_at_the_source_resolution_through_torchserve(client_module, portrait_and_clip):
    width, height = _returned_crop_size(client_module, portrait_and_clip)
    # s0's face crop is over 200 px: animated at its own size (a multiple of 8), not the model's 32.
    assert width == height and width > 200 and width % 8 == 0


def test_plain_return_crop_gives_the_face_crop_at_the_model_size(client_module, portrait_and_clip):
    assert _returned_crop_size(client_module, portrait_and_clip, plain=True) == (32, 32)


@pytest.mark.parametrize("swap,kwargs,code", [
    (True, {}, grpc.StatusCode.INVALID_ARGUMENT),
    (False, {"no_face_crop": True, "best_initial_frame": True}, grpc.StatusCode.INVALID_ARGUMENT),
])
def test_bad_animation_requests_are_refused_before_any_job(client_module, portrait_and_clip, swap, kwargs, code):
    source, driving = portrait_and_clip
    first, second = (driving, source) if swap else (source, driving)
    with pytest.raises(ApiError) as error:
        client_module.animate_image(first.name, second.name, **kwargs)
    assert error.value.code == code


def test_unknown_media_is_not_found(client_module, portrait_and_clip):
    _, driving = portrait_and_clip
    with pytest.raises(ApiError) as error:
        client_module.animate_image("media/" + "a" * 26, driving.name)
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_a_source_without_a_face_ends_the_job_with_invalid_argument(client_module, portrait_and_clip, tmp_path):
    _, driving = portrait_and_clip
    noise = tmp_path / "noise.jpg"
    noise.write_bytes(jpeg_bytes(96, 96))
    source = client_module.upload(noise)
    final = client_module.wait_operation(client_module.animate_image(source.name, driving.name).name, timeout_s=600)
    with pytest.raises(OperationFailed) as error:
        operation_result(final, creation_pb2.AnimateImageResponse)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "no face" in error.value.message


def test_an_unknown_animation_model_ends_the_job_not_found(client_module, portrait_and_clip):
    source, driving = portrait_and_clip
    operation = client_module.animate_image(source.name, driving.name, model="no-such-model")
    with pytest.raises(OperationFailed) as error:
        operation_result(client_module.wait_operation(operation.name, timeout_s=600), creation_pb2.AnimateImageResponse)
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_cancelling_an_animation_mid_run_stores_no_result(client_module, portrait_and_clip):
    source, driving = portrait_and_clip
    operation = client_module.animate_image(source.name, driving.name)
    for update in client_module.watch_operation(operation.name, timeout_s=600):
        if job_metadata(update).items_done > 0:
            client_module.cancel_operation(operation.name)
            break
    final = client_module.wait_operation(operation.name, timeout_s=600)
    assert job_metadata(final).state == jobs_pb2.CANCELLED
    with pytest.raises(ApiError) as error:
        client_module.get_media("media/" + operation.name.split("/")[1])
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_torchserve_counts_the_animation_requests_in_prometheus_text(stack, client_module, portrait_and_clip, shared,
                                                                     tmp_path):
    import urllib.request

    from tests.helpers import short_clip_with_audio

    short_clip_with_audio(shared / "video" / "driving" / "d18.mp4", tmp_path / "short.mp4", frames=3, size=96)
    driving = client_module.upload(tmp_path / "short.mp4")
    client_module.wait_operation(client_module.animate_image(portrait_and_clip[0].name, driving.name).name,
                                 timeout_s=600)
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_ports['creator']}/metrics", timeout=10) as response:
        text = response.read().decode()
    counts = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
              if line.startswith("ts_inference_requests_total{") and 'model_name="fomm"' in line]
    assert counts and sum(counts) >= 1, text[:2000]
