"""Team quotas at the gateway: request rate, unfinished jobs, stored bytes; RESOURCE_EXHAUSTED with
a message that names the quota, and nothing stored when an upload is refused."""

import time

import grpc
import pytest

from dfp.client import ApiError, Client
from dfp.quotas import QuotaStore
from dfp.v1 import media_pb2, media_pb2_grpc
from tests.helpers import jpeg_bytes

pytestmark = pytest.mark.slow


def team_token(stack, team: str, **quota) -> str:
    QuotaStore(stack.object_store()).set(team, **quota)
    return stack.create_token(team, "quota test")


def team_client(stack, team: str, **quota) -> Client:
    return Client(stack.gateway_target, token=team_token(stack, team, **quota))


def test_a_team_over_its_request_rate_gets_resource_exhausted_with_a_retry_hint(stack):
    token = team_token(stack, "team-rate", requests_per_minute=3)
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = media_pb2_grpc.MediaServiceStub(channel)
        metadata = [("authorization", f"Bearer {token}")]
        for _ in range(3):
            stub.ListMedia(media_pb2.ListMediaRequest(), timeout=10, metadata=metadata)
        with pytest.raises(grpc.RpcError) as error:
            stub.ListMedia(media_pb2.ListMediaRequest(), timeout=10, metadata=metadata)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "request rate quota; retry in" in error.value.details()
    trailers = dict(error.value.trailing_metadata())
    assert 0 < float(trailers["retry-after-s"]) <= 20


def test_a_team_with_no_room_for_jobs_is_refused_before_any_job(stack, shared):
    with team_client(stack, "team-jobs", concurrent_jobs=0) as client:
        video = client.upload(shared / "video" / "driving" / "d9.mp4")
        with pytest.raises(ApiError) as error:
            client.detect_video(video.name)
        assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "unfinished jobs" in error.value.message
        assert list(client.list_operations()) == []


def test_an_upload_over_the_storage_quota_is_refused_and_nothing_is_stored(stack, tmp_path):
    first, second = tmp_path / "a.jpg", tmp_path / "b.jpg"
    first.write_bytes(jpeg_bytes(48, 48, seed=1))
    second.write_bytes(jpeg_bytes(48, 48, seed=2))
    room = first.stat().st_size + second.stat().st_size // 2
    with team_client(stack, "team-bytes", stored_bytes=room) as client:
        kept = client.upload(first)
        with pytest.raises(ApiError) as error:
            client.upload(second)
        assert error.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "storage quota" in error.value.message
        assert [m.name for m in client.list_media()] == [kept.name]
        client.delete_media(kept.name)
        time.sleep(0.1)
        client.upload(second)
