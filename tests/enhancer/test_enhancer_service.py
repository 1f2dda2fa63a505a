"""The enhancer's gRPC service over a real socket, reading and writing the real object store."""

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from dfp import config
from dfp.enhancer.v1 import enhancer_pb2, enhancer_pb2_grpc
from dfp.grpc_util import Server
from dfp.storage import MEDIA, RESULTS
from services.enhancer.server.servicer import EnhancerServicer, ModelCache
from tests.helpers import fresh_object_store, mp4_without_frames, png_claiming_size, short_clip_with_audio


@pytest.fixture(scope="module")
def store(s3):
    return fresh_object_store(s3, "enh")


@pytest.fixture(scope="module")
def enhancer(store, enhancer_models):
    settings = config.EnhancerSettings(
        listen="127.0.0.1:0", device="cpu", tile=24, tile_pad=8, batch_size=2, half=False, concurrency=1,
        max_output_pixels=1_000_000, metrics_listen="", storage=store.settings,
        limits=config.LimitSettings.from_env())
    server = Server(settings.listen, [(enhancer_pb2_grpc.add_EnhancerServiceServicer_to_server,
                                       EnhancerServicer(settings, store, ModelCache("cpu", enhancer_models)), "dfp.enhancer.v1.EnhancerService")])
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield enhancer_pb2_grpc.EnhancerServiceStub(channel)
    server.stop()


def _png(width, height) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (height, width, 3), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _call(stub, store, input_key, output_key, **fields):
    request = enhancer_pb2.EnhanceRequest(input_uri=store.uri(MEDIA, input_key), output_uri=store.uri(RESULTS, output_key),
                                          **fields)
    return list(stub.Enhance(request, timeout=120))


def test_an_image_is_enhanced_into_a_labelled_png_in_the_object_store(enhancer, store):
    store.put_bytes(MEDIA, "in/photo.png", _png(20, 16))
    updates = _call(enhancer, store, "in/photo.png", "out/photo.png", model="srvgg-x4", scale=2,
                    labels={"dfp_synthetic": "true", "dfp_operation": "operations/x"})
    final = updates[-1]
    assert final.done and (final.result.width, final.result.height, final.result.frames) == (40, 32, 1)
    assert final.result.content_type == "image/png" and final.result.model == "srvgg-x4"
    data, _ = store.get_bytes(RESULTS, "out/photo.png")
    image = Image.open(io.BytesIO(data))
    assert image.size == (40, 32) and image.info["dfp_operation"] == "operations/x"


def test_a_video_streams_progress_and_keeps_its_audio(enhancer, store, shared, tmp_path):
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "clip.mp4", frames=5, size=24)
    store.put_file(MEDIA, "in/clip.mp4", tmp_path / "clip.mp4")
    updates = _call(enhancer, store, "in/clip.mp4", "out/clip.mp4", model="srvgg-x4")
    assert [u.frames_done for u in updates[:-1]] == [2, 4, 5]
    assert updates[-1].result.frames == 5 and updates[-1].result.content_type == "video/mp4"
    store.download_file(RESULTS, "out/clip.mp4", tmp_path / "out.mp4")
    import av
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert (container.streams.video[0].width, container.streams.video[0].frames) == (96, 5)
        assert len(container.streams.audio) == 1


@pytest.mark.parametrize("fields, code, words", [
    ({"model": "gan-x8"}, grpc.StatusCode.INVALID_ARGUMENT, "unknown model"),
    ({"model": "srvgg-x4", "scale": 5}, grpc.StatusCode.INVALID_ARGUMENT, "scale must be 2, 3 or 4"),
    ({"model": "srvgg-x4", "tile": -1}, grpc.StatusCode.INVALID_ARGUMENT, "tile"),
])
def test_bad_requests_are_refused_before_any_work(enhancer, store, fields, code, words):
    store.put_bytes(MEDIA, "in/small.png", _png(8, 8))
    with pytest.raises(grpc.RpcError) as error:
        _call(enhancer, store, "in/small.png", "out/never.png", **fields)
    assert error.value.code() == code and words in error.value.details()
    assert not store.exists(RESULTS, "out/never.png")


def test_bad_inputs_get_a_clear_status_and_nothing_is_written(enhancer, store, tmp_path):
    mp4_without_frames(tmp_path / "empty.mp4")
    store.put_file(MEDIA, "in/empty.mp4", tmp_path / "empty.mp4")
    store.put_bytes(MEDIA, "in/bomb.png", png_claiming_size(60_000, 60_000))
    store.put_bytes(MEDIA, "in/big.png", _png(300, 300))
    store.put_bytes(MEDIA, "in/truncated.png", _png(32, 32)[:200])
    cases = [
        ("in/missing.png", grpc.StatusCode.NOT_FOUND, "does not exist"),
        ("in/empty.mp4", grpc.StatusCode.INVALID_ARGUMENT, "video"),
        ("in/bomb.png", grpc.StatusCode.RESOURCE_EXHAUSTED, "pixels"),
        ("in/big.png", grpc.StatusCode.RESOURCE_EXHAUSTED, "smaller scale"),
        ("in/truncated.png", grpc.StatusCode.INVALID_ARGUMENT, ""),
    ]
    for key, code, words in cases:
        with pytest.raises(grpc.RpcError) as error:
            _call(enhancer, store, key, "out/bad", model="srvgg-x4")
        assert error.value.code() == code, (key, error.value.details())
        assert words in error.value.details()
    assert not store.exists(RESULTS, "out/bad")


def test_uris_outside_the_platform_buckets_are_refused(enhancer, store):
    request = enhancer_pb2.EnhanceRequest(input_uri="s3://someone-elses/secret.png", output_uri=store.uri(RESULTS, "x"),
                                          model="srvgg-x4")
    with pytest.raises(grpc.RpcError) as error:
        list(enhancer.Enhance(request, timeout=30))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "platform's buckets" in error.value.details()


def test_a_deadline_that_passes_mid_video_stops_the_work_and_writes_nothing(enhancer, store, shared, tmp_path):
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "long.mp4", frames=60, size=48)
    store.put_file(MEDIA, "in/long.mp4", tmp_path / "long.mp4")
    request = enhancer_pb2.EnhanceRequest(input_uri=store.uri(MEDIA, "in/long.mp4"),
                                          output_uri=store.uri(RESULTS, "out/late.mp4"), model="esrgan-x4")
    with pytest.raises(grpc.RpcError) as error:
        list(enhancer.Enhance(request, timeout=3))
    assert error.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    # The service is free again: a small request right after succeeds.
    store.put_bytes(MEDIA, "in/after.png", _png(8, 8))
    assert _call(enhancer, store, "in/after.png", "out/after.png", model="srvgg-x4")[-1].done
    assert not store.exists(RESULTS, "out/late.mp4")
