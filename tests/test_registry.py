"""The model registry against the real S3 server, and publishing into the real model server."""

import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from dfp.grpc_util import CHANNEL_OPTIONS
from dfp.registry import ModelRegistry, RegistryError, sync_serving
from services.detector import archs
from services.detector.calibration import Platt
from services.detector.export import export_saved_model
from services.detector.model_server.__main__ import build_server
from services.detector.model_server.servables import BatchingParameters
from services.detector.weights import load_h5_weights
from tests.helpers import fresh_object_store


@pytest.fixture()
def registry(s3):
    return ModelRegistry(fresh_object_store(s3, "r"))


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory, mesonet_dir):
    """Meso4 DF and F2F weights as SavedModels; the F2F one with a calibration."""
    out = tmp_path_factory.mktemp("saved")
    paths = []
    for filename, calibration in (("Meso4_DF.h5", None), ("Meso4_F2F.h5", Platt(0.5, -1.0))):
        model = archs.build("meso4")
        load_h5_weights(model, mesonet_dir / filename)
        paths.append(export_saved_model(model, out / filename, calibration))
    return paths


def test_versions_carry_their_card_and_files_verbatim(registry, saved_models, tmp_path):
    first = registry.register("detector-a", "detector", saved_models[0], {"metrics": {"val": {"auc": 0.6}}})
    second = registry.register("detector-a", "detector", saved_models[1], {"metrics": {"val": {"auc": 0.7}}})
    assert (first, second) == (1, 2)
    card = registry.card("detector-a", 2)
    assert card["kind"] == "detector" and card["metrics"]["val"]["auc"] == 0.7
    assert any(f["path"] == "saved_model.pb" for f in card["files"])
    restored = registry.download("detector-a", 1, tmp_path / "v1")
    assert (restored / "saved_model.pb").read_bytes() == (saved_models[0] / "saved_model.pb").read_bytes()
    with pytest.raises(RegistryError, match="not detector|is a detector"):
        registry.register("detector-a", "animation", saved_models[0], {})
    with pytest.raises(RegistryError, match="no version 9"):
        registry.publish("detector-a", 9)


def test_any_kind_of_model_file_can_be_registered(registry, tmp_path):
    checkpoint = tmp_path / "vox.pth.tar"
    checkpoint.write_bytes(b"weights")
    assert registry.register("fomm-vox", "animation", checkpoint, {"source": "test"}) == 1
    assert registry.download("fomm-vox", 1, tmp_path / "back.pth.tar").read_bytes() == b"weights"
    assert registry.models() == ["fomm-vox"]


def served_version(stub, batch):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "detector-a"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(batch))
    response = stub.Predict(request, timeout=30)
    return response.model_spec.version.value, tf.make_ndarray(response.outputs["fake_probability"])


def wait_until(check, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def test_publish_and_rollback_change_what_the_model_server_serves_without_restart(registry, saved_models, tmp_path,
                                                                                  mesonet_dir):
    for path in saved_models:
        registry.register("detector-a", "detector", path, {})
    base = tmp_path / "serving"
    registry.publish("detector-a", 1)
    assert sync_serving(registry, base) == {"detector-a": 1}
    server, manager = build_server("127.0.0.1:0", {"detector-a": base / "detector-a"}, BatchingParameters(8, 1000, 1), 0.2)
    manager.start()
    server.start()
    batch = np.random.RandomState(1).randint(0, 256, (2, 256, 256, 3)).astype(np.uint8)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS) as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            assert served_version(stub, batch)[0] == 1

            registry.publish("detector-a", 2)
            sync_serving(registry, base)
            wait_until(lambda: served_version(stub, batch)[0] == 2)
            calibrated = served_version(stub, batch)[1]

            assert registry.rollback("detector-a") == 1
            sync_serving(registry, base)
            wait_until(lambda: served_version(stub, batch)[0] == 1)
            assert sorted(p.name for p in (base / "detector-a").iterdir()) == ["1"]
    finally:
        server.stop()
        manager.stop()
    model = archs.build("meso4")
    load_h5_weights(model, mesonet_dir / "Meso4_F2F.h5")
    raw = 1.0 - model(batch.astype(np.float32) / 255.0, training=False).numpy().reshape(-1)
    np.testing.assert_allclose(calibrated, Platt(0.5, -1.0).apply(raw), atol=1e-5)
    history = [h["action"] for h in registry.model("detector-a")["history"]]
    assert history == ["register", "register", "publish", "publish", "rollback"]
