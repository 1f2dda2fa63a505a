import hashlib
import time

import pytest

from dfp.config import LimitSettings
from gateway.errors import LimitExceeded
from gateway.media_store import MediaStore, UploadRequest
from tests.helpers import fresh_object_store, jpeg_bytes


@pytest.fixture()
def store(s3):
    return fresh_object_store(s3, "u")


def upload(media: MediaStore, data: bytes):
    request = UploadRequest("face.jpg", hashlib.sha256(data).hexdigest(), len(data), None, {})
    return media.upload("team-a", request, [data])


def test_a_slow_stored_bytes_recount_is_repeated_less_often_and_uploads_still_count(store, monkeypatch):
    images = [jpeg_bytes(32, 32, seed) for seed in range(3)]
    quota = sum(len(image) for image in images[:2]) + 10
    media = MediaStore(store, LimitSettings.from_env(), stored_bytes_quota=lambda team: quota, usage_cache_s=0.0)
    recounts = []
    real_count = media.stored_bytes

    def slow_count(team):
        recounts.append(team)
        time.sleep(0.1)  # a listing of many objects
        return real_count(team)

    monkeypatch.setattr(media, "stored_bytes", slow_count)
    upload(media, images[0])
    upload(media, images[1])
    with pytest.raises(LimitExceeded):
        upload(media, images[2])
    # With no cache at all, each upload would recount; a 0.1 s listing is not repeated for 2 s.
    assert recounts == ["team-a"]
