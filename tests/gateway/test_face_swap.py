"""Face swap through the gateway: a model registered in the real S3 registry, picked up by the
creator service's TorchServe without a restart, swapping a stored video over real sockets."""

import shutil
import time

import av
import grpc
import pytest

from dfp.client import ApiError, OperationFailed, job_metadata, operation_result
from dfp.v1 import creation_pb2, jobs_pb2, media_pb2
from tests.helpers import jpeg_bytes, mp4_file, register_swap_model, wait_served

pytestmark = pytest.mark.slow
MODEL = "swap-test"


@pytest.fixture(scope="module")
def client_module(stack):
    from dfp.client import Client

    with Client(stack.gateway_target, timeout_s=120, token=stack.token) as c:
        yield c


def register(stack, run, name: str = MODEL) -> int:
    return register_swap_model(stack, run, name)


@pytest.fixture(scope="module")
def published(stack, swap_run):
    version = register(stack, swap_run)
    wait_served(stack, MODEL, version)
    return version


@pytest.fixture(scope="module")
def target(client_module, shared):
    return client_module.upload(shared / "video" / "driving" / "d18.mp4")


def test_a_published_model_swaps_every_frame_of_a_video_keeping_its_audio(client_module, published, target, tmp_path):
    operation = client_module.swap_face(target.name, MODEL)
    final = client_module.wait_operation(operation.name, timeout_s=600)
    result = operation_result(final, creation_pb2.SwapFaceResponse)
    assert result.frames == target.frame_count
    assert result.swapped_frames >= 0.9 * target.frame_count
    assert result.has_audio
    assert (result.model.name, result.model.version) == (MODEL, published)
    assert job_metadata(final).state == jobs_pb2.SUCCEEDED

    stored = client_module.get_media(result.result_media)
    assert stored.media_type == media_pb2.VIDEO
    assert stored.labels["dfp_synthetic"] == "true"
    assert stored.labels["dfp_generator"] == f"faceswap:{MODEL}:v{published}"
    client_module.download(result.result_media, tmp_path / "out.mp4")
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert container.metadata["dfp_synthetic"] == "true"
        assert container.streams.video[0].frames == target.frame_count
        assert len(container.streams.audio) == 1


def test_publishing_a_new_version_reaches_the_service_without_a_restart(stack, client_module, published, swap_run,
                                                                        target):
    newer = register(stack, swap_run)
    assert newer == published + 1
    wait_served(stack, MODEL, newer)
    operation = client_module.swap_face(target.name, MODEL, to_identity="a", seamless_clone=True)
    result = operation_result(client_module.wait_operation(operation.name, timeout_s=600), creation_pb2.SwapFaceResponse)
    assert result.model.version == newer
    pinned = client_module.swap_face(target.name, MODEL, version=published)
    result = operation_result(client_module.wait_operation(pinned.name, timeout_s=600), creation_pb2.SwapFaceResponse)
    assert result.model.version == published  # the version served before stays loaded


@pytest.mark.parametrize("kwargs,code,says", [
    ({"model": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "no model named no-such-model"),
    ({"model": ""}, grpc.StatusCode.INVALID_ARGUMENT, "model.name"),
    ({"model": MODEL, "to_identity": "c"}, grpc.StatusCode.INVALID_ARGUMENT, "to_identity"),
    ({"model": MODEL, "version": 99}, grpc.StatusCode.NOT_FOUND, "no version 99"),
])
def test_bad_swap_requests_are_refused_before_any_job(client_module, published, target, kwargs, code, says):
    model = kwargs.pop("model")
    with pytest.raises(ApiError) as error:
        client_module.swap_face(target.name, model, **kwargs)
    assert error.value.code == code and says in error.value.message


def test_an_image_target_is_refused(client_module, published, tmp_path):
    image = tmp_path / "still.jpg"
    image.write_bytes(jpeg_bytes(64, 64))
    with pytest.raises(ApiError) as error:
        client_module.swap_face(client_module.upload(image).name, MODEL)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "videos" in error.value.message


def test_a_video_without_a_face_fails_the_job_and_stores_nothing(client_module, published, tmp_path):
    mp4_file(tmp_path / "blank.mp4", frames=6, size=64)
    blank = client_module.upload(tmp_path / "blank.mp4")
    before = {m.name for m in client_module.list_media()}
    operation = client_module.swap_face(blank.name, MODEL)
    with pytest.raises(OperationFailed) as error:
        operation_result(client_module.wait_operation(operation.name, timeout_s=600), creation_pb2.SwapFaceResponse)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT and "no face" in error.value.message
    assert {m.name for m in client_module.list_media()} == before


def test_a_corrupt_published_version_is_refused_by_the_creator_and_jobs_on_it_fail_unavailable(
        stack, client_module, published, swap_run, target, tmp_path):
    from dfp.registry import ModelRegistry
    from services.creator.swap_model import export_release

    release = export_release(swap_run, tmp_path / "release")
    checkpoint = release / "checkpoint.pth.tar"
    checkpoint.write_bytes(checkpoint.read_bytes()[:4000])
    shutil.copyfile(swap_run / "eval.json", release / "eval.json")
    registry = ModelRegistry(stack.object_store())
    broken = registry.register("swap-broken", "face_swap", release,
                               {"resolution": 64, "coverage": 1.6, "metrics": {}})
    registry.publish("swap-broken", broken)
    deadline = time.monotonic() + 60
    while "swap-broken version 1 cannot be served" not in stack.log_path("creator").read_text():
        assert time.monotonic() < deadline
        time.sleep(0.3)
    assert "not a readable PyTorch checkpoint" in stack.log_path("creator").read_text()
    operation = client_module.swap_face(target.name, "swap-broken")
    with pytest.raises(OperationFailed) as error:
        operation_result(client_module.wait_operation(operation.name, timeout_s=600), creation_pb2.SwapFaceResponse)
    assert error.value.code == grpc.StatusCode.UNAVAILABLE and "not loaded" in error.value.message
