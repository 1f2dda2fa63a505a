"""Mutual TLS between the gateway and the services: the stack's model server and enhancer admit only
clients with a certificate from the platform's CA, and the gateway's calls to them go through."""

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from dfp.grpc_util import MutualTls, service_channel
from dfp.pki import create_mtls
from tests.helpers import jpeg_bytes

pytestmark = pytest.mark.slow
SERVICES = {"model_server": "tensorflow.serving.PredictionService", "enhancer": "dfp.enhancer.v1.EnhancerService"}


def check(channel, service: str) -> int:
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


def identity(folder) -> MutualTls:
    return MutualTls.from_files(folder / "ca.crt", folder / "tls.crt", folder / "tls.key")


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_a_client_with_the_platforms_certificate_gets_in_and_no_other_does(stack, name, tmp_path):
    target = stack.model_server_target if name == "model_server" else stack.enhancer_target
    with service_channel(target, mtls=identity(stack.mtls_dir)) as channel:
        assert check(channel, SERVICES[name]) == health_pb2.HealthCheckResponse.SERVING
    with grpc.insecure_channel(target) as channel, pytest.raises(grpc.RpcError) as plaintext:
        check(channel, SERVICES[name])
    assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate from another CA (the server's own is trusted, so only the client's is at fault).
    create_mtls(tmp_path / "other", ["127.0.0.1"])
    stranger = identity(tmp_path / "other")
    trusting = MutualTls(identity(stack.mtls_dir).ca, stranger.certificate, stranger.key)
    with service_channel(target, mtls=trusting) as channel, pytest.raises(grpc.RpcError) as foreign:
        check(channel, SERVICES[name])
    assert foreign.value.code() == grpc.StatusCode.UNAVAILABLE


def test_the_gateway_reaches_the_detector_over_mutual_tls(client):
    from dfp.v1 import detection_pb2

    response = client.detect_image(image_bytes=jpeg_bytes(64, 64, seed=4),
                                   options=detection_pb2.DetectionOptions(face_crop=detection_pb2.FACE_CROP_OFF))
    assert response.verdict.faces_scored == 1 and response.model.version >= 1
