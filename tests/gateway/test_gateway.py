"""The gateway end to end: real S3 server, real model server, real gRPC sockets."""

import hashlib
import os
import signal
import time

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp import faces as faces_lib
from dfp.client import ApiError, job_metadata, operation_result
from dfp.media import decode_image
from dfp.v1 import detection_pb2, jobs_pb2, media_pb2, media_pb2_grpc
from services.detector import scoring
from tests.helpers import jpeg_bytes, png_claiming_size

pytestmark = pytest.mark.slow


def raw_upload(stack, data: bytes, sha256: str | None = None, declared: int | None = None, chunk=256 * 1024):
    def requests():
        yield media_pb2.UploadMediaRequest(
            metadata=media_pb2.UploadMediaMetadata(
                display_name="x", sha256=sha256 or hashlib.sha256(data).hexdigest(),
                size_bytes=len(data) if declared is None else declared,
            )
        )
        for i in range(0, len(data), chunk):
            yield media_pb2.UploadMediaRequest(chunk=data[i : i + chunk])

    with grpc.insecure_channel(stack.gateway_target) as channel:
        return media_pb2_grpc.MediaServiceStub(channel).UploadMedia(
            requests(), timeout=60, metadata=[("authorization", f"Bearer {stack.token}")])


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_every_service_reports_serving_on_the_health_protocol(stack):
    for target, service in (
        (stack.gateway_target, "dfp.v1.MediaService"),
        (stack.gateway_target, "google.longrunning.Operations"),
        (stack.gateway_target, "dfp.v1.CreationService"),
        (f"127.0.0.1:{stack.health_ports['model_server']}", "tensorflow.serving.PredictionService"),
        (f"127.0.0.1:{stack.health_ports['enhancer']}", "dfp.enhancer.v1.EnhancerService"),
    ):
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_upload_then_download_gives_back_the_same_bytes(client, tmp_path):
    data = jpeg_bytes(80, 60, seed=1)
    media = client.upload(write(tmp_path, "a.jpg", data))
    assert media.name.startswith("media/") and len(media.name) == len("media/") + 26
    assert (media.media_type, media.width, media.height) == (media_pb2.IMAGE, 80, 60)
    assert media.sha256 == hashlib.sha256(data).hexdigest()
    assert client.get_media(media.name) == media
    out = tmp_path / "back.jpg"
    client.download(media.name, out)
    assert out.read_bytes() == data


def test_stored_blob_carries_its_sha256_in_object_metadata(stack, client, tmp_path):
    data = jpeg_bytes(seed=21)
    media = client.upload(write(tmp_path, "b.jpg", data))
    media_id = media.name.split("/")[1]
    stat = stack.s3.client().stat_object("dfp-media", f"teams/default/media/{media_id}/blob")
    assert stat.metadata["x-amz-meta-sha256"] == hashlib.sha256(data).hexdigest()


def test_listing_pages_through_every_media_and_delete_removes_one(client, tmp_path):
    names = {client.upload(write(tmp_path, f"{i}.jpg", jpeg_bytes(seed=10 + i))).name for i in range(3)}
    listed = [m.name for m in client.list_media(page_size=1)]
    assert names <= set(listed) and len(listed) == len(set(listed))
    victim = sorted(names)[0]
    client.delete_media(victim)
    with pytest.raises(ApiError) as error:
        client.get_media(victim)
    assert error.value.code == grpc.StatusCode.NOT_FOUND
    assert victim not in [m.name for m in client.list_media()]


def test_media_past_its_retention_is_gone(client, tmp_path):
    media = client.upload(write(tmp_path, "short.jpg", jpeg_bytes(seed=3)), retention_s=1)
    time.sleep(1.5)
    with pytest.raises(ApiError) as error:
        client.get_media(media.name)
    assert error.value.code == grpc.StatusCode.NOT_FOUND and "expired" in error.value.message


BAD_UPLOADS = {
    "empty": (b"", None, None, grpc.StatusCode.INVALID_ARGUMENT, "empty"),
    "not-media": (b"%PDF-1.4 not an image at all" * 10, None, None, grpc.StatusCode.INVALID_ARGUMENT, "not an image"),
    "truncated-jpeg": (jpeg_bytes(300, 300)[:3000], None, None, grpc.StatusCode.INVALID_ARGUMENT, "truncated"),
    "decompression-bomb": (png_claiming_size(60_000, 60_000), None, None, grpc.StatusCode.RESOURCE_EXHAUSTED, "pixel"),
    "sha256-mismatch": (jpeg_bytes(), "0" * 64, None, grpc.StatusCode.INVALID_ARGUMENT, "sha256 mismatch"),
    "declared-over-limit": (jpeg_bytes(), None, 9 * 1024 * 1024, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
    "sent-over-limit": (os.urandom(9 * 1024 * 1024), None, 0, grpc.StatusCode.RESOURCE_EXHAUSTED, "limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
def test_bad_uploads_get_a_clear_status_store_nothing_and_the_gateway_keeps_serving(stack, client, tmp_path, case):
    data, sha, declared, code, words = BAD_UPLOADS[case]
    before = {m.name for m in client.list_media()}
    with pytest.raises(grpc.RpcError) as error:
        raw_upload(stack, data, sha256=sha, declared=declared)
    assert error.value.code() == code
    assert words in error.value.details()
    assert {m.name for m in client.list_media()} == before
    assert client.upload(write(tmp_path, "ok.jpg", jpeg_bytes(seed=4))).name.startswith("media/")


@pytest.mark.parametrize(
    "name,code",
    [("media/abcdefghijklmnopqrstuvwxyz", grpc.StatusCode.NOT_FOUND), ("media/../../etc", grpc.StatusCode.INVALID_ARGUMENT),
     ("", grpc.StatusCode.INVALID_ARGUMENT)],
)
def test_unknown_and_malformed_media_names(client, name, code):
    with pytest.raises(ApiError) as error:
        client.get_media(name)
    assert error.value.code == code
    with pytest.raises(ApiError) as error:
        client.detect_image(media=name)
    assert error.value.code == code


def test_page_tokens_and_sizes_are_checked(stack, client):
    with grpc.insecure_channel(client.target) as channel:
        stub = media_pb2_grpc.MediaServiceStub(channel)
        for request in (media_pb2.ListMediaRequest(page_token="garbage!"), media_pb2.ListMediaRequest(page_size=-1)):
            with pytest.raises(grpc.RpcError) as error:
                stub.ListMedia(request, timeout=10, metadata=[("authorization", f"Bearer {stack.token}")])
            assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_image_detection_with_the_default_detector_matches_the_offline_pipeline(client, shared):
    portrait = shared / "video" / "source" / "s0.jpg"
    media = client.upload(portrait)
    result = client.detect_image(media=media.name)
    assert (result.model.name, result.model.version) == ("detector", 1)
    assert result.faces and result.verdict.faces_scored == len(result.faces)

    offline = scoring.score_image(decode_image(portrait, 10**8), scoring.Detector.platform_default(),
                                  faces_lib.FaceDetector())
    np.testing.assert_allclose([f.fake_probability for f in result.faces], [r.fake_probability for r in offline], atol=1e-4)
    assert result.verdict.max_fake_probability == pytest.approx(max(r.fake_probability for r in offline), abs=1e-4)
    expected_label = detection_pb2.FAKE if result.verdict.max_fake_probability >= 0.5 else detection_pb2.REAL
    assert result.verdict.label == expected_label


def test_inline_face_crop_without_face_finding_scores_the_whole_crop(client, shared, mesonet_dir):
    crop = sorted((shared / "dfdc-faces" / "val" / "fake").iterdir())[0]
    options = detection_pb2.DetectionOptions(face_crop=detection_pb2.FACE_CROP_OFF)
    options.model.name = "mesoinception4"
    result = client.detect_image(image_bytes=crop.read_bytes(), options=options)
    offline = scoring.score_image(decode_image(crop, 10**8), scoring.Detector.from_h5(mesonet_dir / "MesoInception_DF.h5"), None)
    assert result.model.name == "mesoinception4"
    assert result.faces[0].fake_probability == pytest.approx(offline[0].fake_probability, abs=1e-4)


def test_an_image_without_faces_is_a_valid_answer(client):
    noise = jpeg_bytes(200, 200, seed=9)
    result = client.detect_image(image_bytes=noise)
    assert result.verdict.label == detection_pb2.NO_FACE and not result.faces


@pytest.mark.parametrize(
    "kwargs,code",
    [
        ({"image_bytes": b""}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"image_bytes": b"\xff\xd8\xff" + b"0" * (2 * 1024 * 1024)}, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ({"image_bytes": jpeg_bytes(400, 400)[:2000]}, grpc.StatusCode.INVALID_ARGUMENT),
        ({"image_bytes": png_claiming_size(60_000, 60_000)}, grpc.StatusCode.RESOURCE_EXHAUSTED),
        ({"image_bytes": jpeg_bytes(), "options": detection_pb2.DetectionOptions(threshold=2)}, grpc.StatusCode.INVALID_ARGUMENT),
        ({}, grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["empty", "over-inline-limit", "truncated", "bomb", "bad-threshold", "no-source"],
)
def test_bad_detection_requests_get_a_clear_status(client, kwargs, code):
    with pytest.raises(ApiError) as error:
        client.detect_image(**kwargs)
    assert error.value.code == code
    assert client.detect_image(image_bytes=jpeg_bytes()).verdict.label == detection_pb2.NO_FACE


def test_an_unknown_detector_model_is_not_found(client, shared):
    options = detection_pb2.DetectionOptions()
    options.model.name = "no-such-model"
    with pytest.raises(ApiError) as error:
        client.detect_image(image_bytes=(shared / "video" / "source" / "s0.jpg").read_bytes(), options=options)
    assert error.value.code == grpc.StatusCode.NOT_FOUND


def test_video_detection_runs_as_a_job_with_progress_tracks_and_a_report(client, shared):
    media = client.upload(shared / "video" / "driving" / "d0.mp4")
    assert media.media_type == media_pb2.VIDEO and media.frame_count > 0
    with pytest.raises(ApiError) as error:
        client.detect_image(media=media.name)
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    sampling = detection_pb2.FrameSampling(frame_count=6)
    operation = client.detect_video(media.name, sampling=sampling, request_id="video-test-1")
    assert not operation.done and job_metadata(operation).state == jobs_pb2.QUEUED
    assert client.detect_video(media.name, sampling=sampling, request_id="video-test-1").name == operation.name

    seen = []
    final = client.wait_operation(operation.name, timeout_s=300, on_update=lambda op: seen.append(job_metadata(op).state))
    assert jobs_pb2.RUNNING in seen and seen[-1] == jobs_pb2.SUCCEEDED
    result = operation_result(final, detection_pb2.DetectVideoResponse)
    assert result.frames_sampled == 6 and len(result.frames) == 6
    assert result.tracks and result.tracks[0].verdict.faces_scored >= 5
    assert result.verdict.faces_scored == sum(len(f.faces) for f in result.frames)
    assert result.result_uri.startswith("s3://dfp-results/teams/default/results/")
    assert operation.name in [op.name for op in client.list_operations()]


def test_a_job_survives_a_gateway_crash(stack, client, shared):
    media = client.upload(shared / "video" / "driving" / "d3.mp4")
    operation = client.detect_video(media.name, sampling=detection_pb2.FrameSampling(frame_count=40))
    deadline = time.monotonic() + 120
    while job_metadata(client.get_operation(operation.name)).state != jobs_pb2.RUNNING:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    os.killpg(stack._processes["gateway"].pid, signal.SIGKILL)
    stack._processes.pop("gateway").wait()
    stack.start_gateway()
    final = client.wait_operation(operation.name, timeout_s=300)
    result = operation_result(final, detection_pb2.DetectVideoResponse)
    assert result.frames_sampled == 40
    assert job_metadata(final).attempt == 2


def test_cancelling_a_video_job_ends_it_cancelled(client, shared):
    media = client.upload(shared / "video" / "driving" / "d6.mp4")
    operation = client.detect_video(media.name, sampling=detection_pb2.FrameSampling(frame_count=200))
    client.cancel_operation(operation.name)
    final = client.wait_operation(operation.name, timeout_s=120)
    assert final.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert job_metadata(final).state == jobs_pb2.CANCELLED


def test_calls_are_counted_in_prometheus_metrics_and_logged_with_their_request_id(stack, tmp_path):
    import json
    import urllib.request

    data = jpeg_bytes(seed=77)
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = media_pb2_grpc.MediaServiceStub(channel)
        requests = iter([media_pb2.UploadMediaRequest(metadata=media_pb2.UploadMediaMetadata(
                            display_name="traced", sha256=hashlib.sha256(data).hexdigest(), size_bytes=len(data))),
                         media_pb2.UploadMediaRequest(chunk=data)])
        media, call = stub.UploadMedia.with_call(requests, timeout=30, metadata=[
            ("authorization", f"Bearer {stack.token}"), ("x-request-id", "trace-me-77")])
    assert dict(call.initial_metadata())["x-request-id"] == "trace-me-77"
    lines = [json.loads(line) for line in stack.log_path("gateway").read_text().splitlines() if line.startswith("{")]
    assert any(line.get("request_id") == "trace-me-77" and media.name in line["message"] for line in lines)

    from dfp.client import Client

    with Client(stack.gateway_target, token=stack.token) as client:
        client.detect_image(image_bytes=data, options=detection_pb2.DetectionOptions(
            face_crop=detection_pb2.FACE_CROP_OFF))

    def scrape(name):
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.metrics_ports[name]}/metrics", timeout=10) as response:
            return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
                    for line in response.read().decode().splitlines() if line and not line.startswith("#")}

    gateway, model_server = scrape("gateway"), scrape("model_server")
    assert gateway['dfp_gateway_requests_total{code="OK",method="/dfp.v1.MediaService/UploadMedia"}'] >= 1
    assert gateway['dfp_gateway_requests_total{code="OK",method="/dfp.v1.DetectionService/DetectImage"}'] >= 1
    assert "dfp_gateway_jobs_pending" in gateway
    predicted = 'dfp_model_server_requests_total{code="OK",method="/tensorflow.serving.PredictionService/Predict"}'
    assert model_server[predicted] >= 1
    assert model_server["dfp_model_server_batch_rows_count"] >= 1
