"""Fuzzing the gateway: every RPC it serves (found by reflection) with malformed messages, and the
upload with malformed media; the gateway must answer each within the deadline with a deliberate
status (never INTERNAL or UNKNOWN) and keep serving.

DFP_FUZZ_COUNT sets the number of generated messages (default 400; `make fuzz` runs 5000)."""

import hashlib
import io
import os
import random
import time
import zipfile

import grpc
import pytest
from google.protobuf import descriptor, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp.quotas import QuotaStore
from dfp.v1 import media_pb2, media_pb2_grpc
from tests.gateway.test_auth import call_raw, served_methods
from tests.helpers import jpeg_bytes, mp4_file, png_claiming_size

pytestmark = pytest.mark.slow
DEADLINE_S = 20
BAD = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED}

STRINGS = ["", "media/", "media/" + "a" * 26, "media/../../etc/passwd", "operations/" + "z" * 26,
           "operations/%00", "x" * 70_000, "\u202e\u0000\ud7ff", "media/AAAAAAAAAAAAAAAAAAAAAAAAAA", "teams/other"]
INTEGERS = [0, -1, 1, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
FLOATS = [0.0, -1.0, 1e308, -1e308, float("nan"), float("inf"), 1e-300]


def random_value(field, rng: random.Random, depth: int):
    types = descriptor.FieldDescriptor
    if field.type == types.TYPE_MESSAGE:
        return random_message(field.message_type, rng, depth + 1)
    if field.type == types.TYPE_STRING:
        return rng.choice(STRINGS)
    if field.type == types.TYPE_BYTES:
        return rng.randbytes(rng.choice([0, 1, 100, 5000]))
    if field.type == types.TYPE_BOOL:
        return rng.random() < 0.5
    if field.type == types.TYPE_ENUM:
        return rng.choice([v.number for v in field.enum_type.values] + [999, -5])
    if field.type in (types.TYPE_FLOAT, types.TYPE_DOUBLE):
        value = rng.choice(FLOATS)
        return max(min(value, 3e38), -3e38) if field.type == types.TYPE_FLOAT else value
    unsigned = field.type in (types.TYPE_UINT32, types.TYPE_UINT64, types.TYPE_FIXED32, types.TYPE_FIXED64)
    wide = field.type in (types.TYPE_INT64, types.TYPE_UINT64, types.TYPE_SINT64, types.TYPE_FIXED64,
                          types.TYPE_SFIXED64)
    value = rng.choice(INTEGERS)
    value = abs(value) if unsigned else value
    return value if wide else max(min(value, 2**31 - 1 if not unsigned else 2**32 - 1), -(2**31))


def random_message(message_descriptor, rng: random.Random, depth: int = 0):
    message = message_factory.GetMessageClass(message_descriptor)()
    if depth > 3 or message_descriptor.full_name.startswith("google.protobuf.Any"):
        return message
    for field in message_descriptor.fields:
        if rng.random() < 0.4:
            continue
        if field.is_repeated:
            if field.message_type is not None and field.message_type.GetOptions().map_entry:
                continue
            for _ in range(rng.choice([1, 3])):
                value = random_value(field, rng, depth)
                if field.type == field.TYPE_MESSAGE:
                    getattr(message, field.name).add().CopyFrom(value)
                else:
                    getattr(message, field.name).append(value)
        elif field.type == field.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(random_value(field, rng, depth))
        else:
            setattr(message, field.name, random_value(field, rng, depth))
    return message


def malformed_media(tmp_path) -> dict[str, bytes]:
    good_jpeg = jpeg_bytes(64, 48)
    mp4_file(tmp_path / "clip.mp4", frames=12)
    good_mp4 = (tmp_path / "clip.mp4").read_bytes()
    nested = io.BytesIO()
    with zipfile.ZipFile(nested, "w") as outer:
        inner = io.BytesIO()
        with zipfile.ZipFile(inner, "w") as archive:
            archive.writestr("face.jpg", good_jpeg)
        outer.writestr("inner.zip", inner.getvalue())
    return {
        "truncated jpeg": good_jpeg[: len(good_jpeg) // 2],
        "jpeg header only": good_jpeg[:20],
        "wrong magic": b"\x89PNX" + good_jpeg[4:],
        "png claiming 100k x 100k": png_claiming_size(100_000, 100_000),
        "png claiming 0 x 0": png_claiming_size(0, 0),
        "truncated mp4": good_mp4[: len(good_mp4) // 3],
        "mp4 without moov": good_mp4[:64],
        "nested zip": nested.getvalue(),
        "one byte": b"\xff",
        "random": random.Random(1).randbytes(4096),
        "jpeg magic then noise": good_jpeg[:4] + random.Random(2).randbytes(3000),
    }


def upload_status(stub, token: str, data: bytes, declared: int) -> grpc.StatusCode:
    def requests():
        yield media_pb2.UploadMediaRequest(metadata=media_pb2.UploadMediaMetadata(
            display_name="fuzz", sha256=hashlib.sha256(data).hexdigest(), size_bytes=declared))
        for start in range(0, len(data), 64 * 1024):
            yield media_pb2.UploadMediaRequest(chunk=data[start:start + 64 * 1024])

    try:
        stub.UploadMedia(requests(), timeout=DEADLINE_S, metadata=[("authorization", f"Bearer {token}")])
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


def test_malformed_messages_and_media_get_deliberate_statuses_and_the_gateway_keeps_serving(stack, tmp_path):
    count = int(os.environ.get("DFP_FUZZ_COUNT", "400"))
    QuotaStore(stack.object_store()).set("team-fuzz", requests_per_minute=1e6, concurrent_jobs=1000)
    token = stack.create_token("team-fuzz", "fuzzer")
    metadata = [("authorization", f"Bearer {token}")]
    methods = served_methods(stack)
    rng = random.Random(20261126)
    outcomes: dict[str, int] = {}
    failures = []
    slowest = 0.0
    with grpc.insecure_channel(stack.gateway_target) as channel:
        for index in range(count):
            path, method = rng.choice(methods)
            if method.client_streaming:
                continue  # the upload stream is fuzzed with media below
            garbage = rng.random() < 0.2
            request = (rng.randbytes(rng.choice([1, 7, 300])) if garbage
                       else random_message(method.input_type, rng).SerializeToString())
            started = time.monotonic()
            code = call_raw(channel, path, method, metadata, request)
            slowest = max(slowest, time.monotonic() - started)
            outcomes[code.name] = outcomes.get(code.name, 0) + 1
            if code in BAD:
                failures.append((path, request[:200], code))
        stub = media_pb2_grpc.MediaServiceStub(channel)
        for name, data in malformed_media(tmp_path).items():
            for declared in (len(data), 0, len(data) + 1, 2**62):
                code = upload_status(stub, token, data, declared)
                outcomes[code.name] = outcomes.get(code.name, 0) + 1
                if code in BAD or code == grpc.StatusCode.OK:
                    failures.append((f"upload {name} declared {declared}", b"", code))
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    print(f"fuzz: {sum(outcomes.values())} inputs, outcomes {outcomes}, slowest answer {slowest:.2f} s")
    assert not failures, failures[:10]
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert slowest < DEADLINE_S
