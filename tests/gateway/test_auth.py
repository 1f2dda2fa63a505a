"""Who may call the gateway and what each team may touch: real tokens in the real object store,
every RPC the gateway serves (found by reflection, so new RPCs are covered without editing this)."""

import subprocess
import sys
import time

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import dfp.v1.creation_pb2  # noqa: F401  (registers the services' descriptors)
import dfp.v1.detection_pb2  # noqa: F401
import dfp.v1.jobs_pb2  # noqa: F401
import dfp.v1.media_pb2  # noqa: F401
from dfp.client import ApiError, Client
from dfp.devstack import REPO, wait_healthy
from dfp.local_s3 import free_port
from dfp.tokens import TokenStore
from tests.helpers import jpeg_bytes

pytestmark = pytest.mark.slow
HEALTH = "grpc.health.v1.Health"


def served_methods(stack) -> list[tuple[str, object]]:
    """(path, method descriptor) of every RPC the gateway serves, as its reflection service lists them."""
    with grpc.insecure_channel(stack.gateway_target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                              timeout=10, metadata=[("authorization", f"Bearer {stack.token}")])
        names = [service.name for service in next(responses).list_services_response.service]
    methods = []
    for name in names:
        if name in (HEALTH, "grpc.reflection.v1alpha.ServerReflection"):
            continue
        service = descriptor_pool.Default().FindServiceByName(name)
        methods += [(f"/{name}/{method.name}", method) for method in service.methods]
    return methods


def call_raw(channel, path: str, method, metadata, request: bytes = b""):
    """Calls ``path`` with a serialized request (empty by default) in the right streaming shape;
    returns the status code."""
    kinds = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
             (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    call = kinds[(method.client_streaming, method.server_streaming)](path)
    request = iter([request]) if method.client_streaming else request
    try:
        result = call(request, timeout=10, metadata=metadata)
        if method.server_streaming:
            list(result)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()


def test_every_rpc_but_health_refuses_calls_without_a_valid_token(stack):
    methods = served_methods(stack)
    assert {"/dfp.v1.MediaService/UploadMedia", "/dfp.v1.CreationService/SwapFace",
            "/google.longrunning.Operations/ListOperations"} <= {path for path, _ in methods}
    revoked = stack.create_token("default", "revoked in this test")
    TokenStore(stack.object_store()).revoke(revoked.split("_")[1])
    time.sleep(1)  # past the gateway's token cache (DFP_AUTH_CACHE_S in the test stack)
    forged = stack.token[:-4] + ("AAAA" if not stack.token.endswith("AAAA") else "BBBB")
    with grpc.insecure_channel(stack.gateway_target) as channel:
        for metadata in ([], [("authorization", "Bearer not-a-token")], [("authorization", f"Bearer {forged}")],
                         [("authorization", f"Bearer {revoked}")], [("authorization", stack.token)]):
            refused = {path: call_raw(channel, path, method, metadata) for path, method in methods}
            assert set(refused.values()) == {grpc.StatusCode.UNAUTHENTICATED}, (metadata, refused)
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING


def test_a_revoked_token_stops_working(stack, tmp_path):
    token = stack.create_token("default", "short-lived")
    with Client(stack.gateway_target, token=token) as client:
        assert list(client.list_media(page_size=1)) is not None
        TokenStore(stack.object_store()).revoke(token.split("_")[1])
        time.sleep(1)
        with pytest.raises(ApiError) as error:
            list(client.list_media(page_size=1))
    assert error.value.code == grpc.StatusCode.UNAUTHENTICATED and "revoked" in error.value.message


def test_a_team_cannot_see_or_touch_another_teams_media_or_jobs(stack, tmp_path, shared):
    image = tmp_path / "mine.jpg"
    image.write_bytes(jpeg_bytes(64, 64, seed=3))
    with Client(stack.gateway_target, token=stack.create_token("team-a", "a")) as a, \
            Client(stack.gateway_target, token=stack.create_token("team-b", "b")) as b:
        media = a.upload(image)
        video = a.upload(shared / "video" / "driving" / "d9.mp4")
        operation = a.detect_video(video.name)
        assert not any(m.name in (media.name, video.name) for m in b.list_media())
        assert not any(o.name == operation.name for o in b.list_operations())
        attempts = [
            lambda: b.get_media(media.name),
            lambda: b.download(media.name, tmp_path / "stolen.jpg"),
            lambda: b.delete_media(media.name),
            lambda: b.detect_image(media=media.name),
            lambda: b.detect_video(video.name),
            lambda: b.animate_image(media.name, video.name),
            lambda: b.get_operation(operation.name),
            lambda: b.cancel_operation(operation.name),
        ]
        for attempt in attempts:
            with pytest.raises(ApiError) as error:
                attempt()
            assert error.value.code == grpc.StatusCode.NOT_FOUND  # not PERMISSION_DENIED: nothing leaks
        assert not (tmp_path / "stolen.jpg").exists()
        assert a.get_media(media.name).sha256 == media.sha256
        a.wait_operation(operation.name, timeout_s=600)


def test_the_gateway_serves_tls_when_given_a_certificate(stack, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    target = f"127.0.0.1:{free_port()}"
    env = {**stack.env(), "DFP_GATEWAY_LISTEN": target, "DFP_TLS_CERT": str(cert), "DFP_TLS_KEY": str(key)}
    log = tmp_path / "gateway.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], env=env, cwd=REPO, stdout=out,
                                   stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        with Client(target, token=stack.token, tls_ca=str(cert), timeout_s=5) as client:
            while True:
                try:
                    listed = list(client.list_media(page_size=1))
                    break
                except ApiError:
                    assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
                    time.sleep(0.5)
        assert isinstance(listed, list)
        with pytest.raises(TimeoutError):
            wait_healthy(target, timeout_s=3)  # a plaintext client gets nowhere
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_audit_log_says_who_uploaded_downloaded_and_deleted_what_and_who_was_refused(stack, tmp_path):
    import json

    from click.testing import CliRunner

    from dfp.cli.main import cli

    image = tmp_path / "audited.jpg"
    image.write_bytes(jpeg_bytes(64, 64, seed=9))
    with Client(stack.gateway_target, token=stack.create_token("team-audit", "alice")) as alice, \
            Client(stack.gateway_target, token=stack.create_token("team-snoop", "mallory")) as mallory:
        media = alice.upload(image)
        alice.download(media.name, tmp_path / "back.jpg")
        with pytest.raises(ApiError):
            mallory.get_media(media.name)  # a read of metadata: not audited
        with pytest.raises(ApiError):
            mallory.download(media.name, tmp_path / "stolen.jpg")
        alice.delete_media(media.name)

    def audit(team, *args):
        result = CliRunner().invoke(cli, ["admin", "audit", "--team", team, "--json", *args], env=stack.s3.env())
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.output.splitlines()]

    deadline = time.monotonic() + 30
    while len(audit("team-audit", "--resource", media.name)) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    events = audit("team-audit", "--resource", media.name)
    assert [(e["action"], e["outcome"], e["token_name"]) for e in events] == [
        ("UploadMedia", "OK", "alice"), ("DownloadMedia", "OK", "alice"), ("DeleteMedia", "OK", "alice")]
    while not audit("team-snoop") and time.monotonic() < deadline:
        time.sleep(0.3)
    refused = audit("team-snoop")
    assert [(e["action"], e["outcome"], e["resources"]) for e in refused] == [
        ("DownloadMedia", "NOT_FOUND", [media.name])]
