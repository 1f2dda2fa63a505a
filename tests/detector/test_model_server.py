"""The model server speaks TensorFlow Serving's API: official stubs, real sockets."""

import shutil
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_management_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from dfp.admission import retry_delay_s
from dfp.grpc_util import CHANNEL_OPTIONS
from services.detector import archs
from services.detector.export import export_version
from services.detector.model_server.__main__ import build_server
from services.detector.model_server.batching import Batcher
from services.detector.model_server.servables import BatchingParameters
from services.detector.weights import load_h5_weights


@pytest.fixture()
def served(tmp_path, model_base_path):
    base = tmp_path / "serving"
    shutil.copytree(model_base_path, base)
    models = {"meso4": base / "meso4", "mesoinception4": base / "mesoinception4"}
    server, manager = build_server("127.0.0.1:0", models, BatchingParameters(8, 5000, 1), poll_wait_s=0.2)
    manager.start()
    server.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS)
    yield base, channel, manager
    channel.close()
    server.stop()
    manager.stop()


def predict_request(name, batch, version=None):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.model_spec.signature_name = "serving_default"
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(batch))
    return request


def crops(n, seed=0):
    """Face crops as the exported signature takes them: uint8 pixels."""
    return np.random.RandomState(seed).randint(0, 256, (n, 256, 256, 3)).astype(np.uint8)


def keras_fake_probability(h5_path, arch, batch):
    model = archs.build(arch)
    load_h5_weights(model, h5_path)
    return 1.0 - model(batch.astype(np.float32) / 255.0, training=False).numpy().reshape(-1)


def test_official_client_predicts_with_the_served_model(served, mesonet_dir):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    batch = crops(3)
    response = stub.Predict(predict_request("meso4", batch), timeout=30)
    assert response.model_spec.name == "meso4" and response.model_spec.version.value == 1
    got = tf.make_ndarray(response.outputs["fake_probability"])
    np.testing.assert_allclose(got, keras_fake_probability(mesonet_dir / "Meso4_DF.h5", "meso4", batch), atol=1e-5)


def test_metadata_and_status_follow_tf_serving(served):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "mesoinception4"
    response = stub.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(signatures)
    signature = signatures.signature_def["serving_default"]
    assert list(signature.inputs) == ["image"]
    assert signature.inputs["image"].dtype == tf.uint8.as_datatype_enum
    assert [d.size for d in signature.inputs["image"].tensor_shape.dim] == [-1, 256, 256, 3]
    assert list(signature.outputs) == ["fake_probability"]

    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status = status_stub.GetModelStatus(get_model_status_pb2.GetModelStatusRequest(model_spec={"name": "meso4"}), timeout=10)
    assert [(s.version, s.state) for s in status.model_version_status] == [
        (1, get_model_status_pb2.ModelVersionStatus.AVAILABLE)
    ]


def wait_for_version(stub, name, version, timeout_s=60):
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = stub.Predict(predict_request(name, crops(1)), timeout=30)
        if response.model_spec.version.value == version:
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never served version {version}")


def test_new_version_is_served_without_restart_and_removing_it_rolls_back(served, mesonet_dir):
    base, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    model = archs.build("meso4")
    load_h5_weights(model, mesonet_dir / "Meso4_F2F.h5")
    export_version(model, base, "meso4", 2)
    wait_for_version(stub, "meso4", 2)
    batch = crops(2, seed=5)
    got = tf.make_ndarray(stub.Predict(predict_request("meso4", batch), timeout=30).outputs["fake_probability"])
    np.testing.assert_allclose(got, keras_fake_probability(mesonet_dir / "Meso4_F2F.h5", "meso4", batch), atol=1e-5)

    shutil.rmtree(base / "meso4" / "2")
    wait_for_version(stub, "meso4", 1)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(predict_request("meso4", crops(1), version=2), timeout=10)
    assert error.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    "mutate,code",
    [
        (lambda r: r.model_spec.__setattr__("name", "nope"), grpc.StatusCode.NOT_FOUND),
        (lambda r: r.inputs["image"].CopyFrom(tf.make_tensor_proto(crops(1)[:, :128])), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda r: r.inputs["image"].CopyFrom(tf.make_tensor_proto(np.zeros((1, 256, 256, 3), np.int32))),
         grpc.StatusCode.INVALID_ARGUMENT),
        (lambda r: r.inputs["pixels"].CopyFrom(tf.make_tensor_proto(crops(1))), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda r: r.model_spec.__setattr__("signature_name", "other"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["unknown-model", "wrong-shape", "wrong-dtype", "extra-input", "unknown-signature"],
)
def test_bad_requests_get_tf_serving_status_codes_and_the_server_keeps_serving(served, mutate, code):
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_request("meso4", crops(1))
    mutate(request)
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(request, timeout=10)
    assert error.value.code() == code
    assert stub.Predict(predict_request("meso4", crops(1)), timeout=30).outputs["fake_probability"].tensor_shape.dim[0].size == 1


def test_reload_config_changes_the_served_models(served):
    base, channel, manager = served
    config = model_management_pb2.ReloadConfigRequest()
    entry = config.config.model_config_list.config.add()
    entry.name, entry.base_path, entry.model_platform = "detector", str(base / "mesoinception4"), "tensorflow"
    model_service_pb2_grpc.ModelServiceStub(channel).HandleReloadConfigRequest(config, timeout=60)
    assert manager.model_names() == ["detector"]
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    assert stub.Predict(predict_request("detector", crops(1)), timeout=30).model_spec.name == "detector"


def test_batcher_merges_concurrent_requests_and_splits_results_back():
    calls = []

    def run(batch):
        calls.append(len(batch))
        return batch[:, 0] * 2

    batcher = Batcher(run, max_batch_size=16, batch_timeout_micros=200_000, num_batch_threads=1)
    results = {}

    def submit(i):
        results[i] = batcher.submit(np.full((2, 1), i, np.float32)).result()

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    big = batcher.submit(np.arange(40, dtype=np.float32)[:, None]).result()
    batcher.close()
    assert all(np.array_equal(results[i], [2 * i, 2 * i]) for i in range(8))
    assert np.array_equal(big, np.arange(40) * 2)
    assert len(calls) < 8 + 3, f"concurrent requests were not merged: {calls}"
    assert max(calls) <= 16


def test_a_full_batching_queue_refuses_at_once_instead_of_queueing_without_bound():
    release = threading.Event()

    def run(batch):
        release.wait(10)
        return batch[:, 0]

    batcher = Batcher(run, max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1, max_enqueued_batches=2)
    accepted = []
    with pytest.raises(OverflowError, match="queue is full"):
        for _ in range(10):
            accepted.append(batcher.submit(np.ones((1, 1), np.float32)))
    release.set()
    assert 2 <= len(accepted) <= 3
    assert all(future.result(10)[0] == 1 for future in accepted)
    batcher.close()


def test_an_overloaded_model_server_answers_unavailable_with_a_retry_hint(served, monkeypatch):
    from services.detector.model_server import servables

    def overloaded(self, signature, inputs):
        raise OverflowError("batching queue is full")

    monkeypatch.setattr(servables.Servable, "run", overloaded)
    _, channel, _ = served
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Predict(predict_request("meso4", crops(1)), timeout=30)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "retry" in refused.value.details()
    assert retry_delay_s(refused.value) == pytest.approx(0.1)
