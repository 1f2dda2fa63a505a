"""Fault runs: the object store, the detector model server and the creator service go away in the
middle of work, on a stack of their own. Each test records what the client saw, that the platform
works again once the part is back, and that nothing acknowledged was lost. (The gateway's own crash
is in test_gateway: its running job is taken over after the lease.)"""

import hashlib
import os
import signal
import time

import grpc
import pytest

from dfp.client import ApiError, Client, OperationFailed, job_metadata, operation_result
from dfp.devstack import LocalStack
from dfp.v1 import creation_pb2, detection_pb2, jobs_pb2
from tests.conftest import STACK_ENV
from tests.helpers import jpeg_bytes

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory, model_base_path, animation_model):
    with LocalStack(tmp_path_factory.mktemp("faults"), model_base_path, STACK_ENV, animation_model) as running:
        yield running


@pytest.fixture()
def client(fault_stack):
    with Client(fault_stack.gateway_target, timeout_s=30, token=fault_stack.token) as c:
        yield c


def kill(stack, name: str) -> None:
    """SIGKILL: no shutdown, no draining, as a crash."""
    process = stack._processes.pop(name)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def eventually(call, within_s: float = 10.0):
    """The call's result once it stops failing with UNAVAILABLE (the gateway reconnecting)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            return call()
        except ApiError as exc:
            if exc.code != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_object_store_outage_fails_calls_fast_with_unavailable_and_loses_nothing(fault_stack, client, tmp_path):
    before = tmp_path / "before.jpg"
    before.write_bytes(jpeg_bytes(64, 64, seed=41))
    kept = client.upload(before)
    fault_stack.s3.stop()
    try:
        during = tmp_path / "during.jpg"
        during.write_bytes(jpeg_bytes(64, 64, seed=42))
        seen = {}
        for name, call in (("upload", lambda: client.upload(during)), ("get", lambda: client.get_media(kept.name)),
                           ("download", lambda: client.download(kept.name, tmp_path / "x.jpg"))):
            started = time.monotonic()
            with pytest.raises(ApiError) as error:
                call()
            seen[name] = (error.value.code, time.monotonic() - started)
        assert {code for code, _ in seen.values()} == {grpc.StatusCode.UNAVAILABLE}, seen
        assert max(seconds for _, seconds in seen.values()) < 20, seen
    finally:
        fault_stack.s3.start()
    client.download(kept.name, tmp_path / "back.jpg")
    assert (tmp_path / "back.jpg").read_bytes() == before.read_bytes()
    again = client.upload(during)
    assert again.sha256 == hashlib.sha256(during.read_bytes()).hexdigest()


def test_detector_crash_fails_detection_fast_and_recovers_when_it_is_back(fault_stack, client, shared):
    crop = (shared / "video" / "source" / "s0.jpg").read_bytes()
    options = detection_pb2.DetectionOptions(face_crop=detection_pb2.FACE_CROP_OFF)
    video = client.upload(shared / "video" / "driving" / "d3.mp4")
    kill(fault_stack, "model_server")
    try:
        started = time.monotonic()
        with pytest.raises(ApiError) as error:
            client.detect_image(image_bytes=crop, options=options)
        assert error.value.code == grpc.StatusCode.UNAVAILABLE and time.monotonic() - started < 20
        operation = client.detect_video(video.name, sampling=detection_pb2.FrameSampling(frame_count=8))
        with pytest.raises(OperationFailed) as failed:
            operation_result(client.wait_operation(operation.name, timeout_s=300), detection_pb2.DetectVideoResponse)
        assert failed.value.code == grpc.StatusCode.UNAVAILABLE
    finally:
        fault_stack.start_model_server()
    assert eventually(lambda: client.detect_image(image_bytes=crop, options=options)).verdict.faces_scored == 1
    operation = client.detect_video(video.name, sampling=detection_pb2.FrameSampling(frame_count=8))
    result = operation_result(client.wait_operation(operation.name, timeout_s=300), detection_pb2.DetectVideoResponse)
    assert result.frames_sampled == 8


def test_creator_outage_mid_animation_fails_the_job_cleanly_and_the_next_one_succeeds(fault_stack, client, shared):
    source = client.upload(shared / "video" / "source" / "s0.jpg")
    driving = client.upload(shared / "video" / "driving" / "d18.mp4")
    operation = client.animate_image(source.name, driving.name)
    for update in client.watch_operation(operation.name, timeout_s=600):
        if job_metadata(update).items_done > 0:
            break
    fault_stack.stop_process("creator")
    try:
        final = client.wait_operation(operation.name, timeout_s=600)
        assert job_metadata(final).state == jobs_pb2.FAILED
        with pytest.raises(OperationFailed) as failed:
            operation_result(final, creation_pb2.AnimateImageResponse)
        assert failed.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(ApiError) as error:
            client.get_media("media/" + operation.name.split("/")[1])
        assert error.value.code == grpc.StatusCode.NOT_FOUND  # no half-made result
    finally:
        fault_stack.start_creator()
    retry = client.animate_image(source.name, driving.name)
    result = operation_result(client.wait_operation(retry.name, timeout_s=600), creation_pb2.AnimateImageResponse)
    assert result.frames == driving.frame_count
