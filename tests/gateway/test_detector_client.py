"""The gateway's detector client sends crops as each model's signature asks: uint8 pixels to what this
platform exports, float32 in [0, 1] to versions exported before, and follows a version that changes."""

import shutil
import time

import numpy as np
import pytest
import tensorflow as tf

from dfp import faces  # noqa: F401  (torch before TensorFlow, see dfp.faces)
from gateway.detector_client import DetectorClient
from services.detector import scoring
from services.detector.export import export_version
from services.detector.model_server.__main__ import build_server
from services.detector.model_server.servables import BatchingParameters


def export_float32_version(network, model_dir, version):
    """A version in the layout exported before uint8 inputs: `image` float32 in [0, 1]."""
    side = network.input_shape[1]

    class Served(tf.Module):
        def __init__(self):
            super().__init__()
            self.network = network

        @tf.function(input_signature=[tf.TensorSpec([None, side, side, 3], tf.float32, name="image")])
        def serve(self, image):
            return {"fake_probability": 1.0 - tf.reshape(self.network(image, training=False), [-1])}

    module = Served()
    tf.saved_model.save(module, str(model_dir / str(version)), signatures={"serving_default": module.serve})


@pytest.fixture()
def meso4(mesonet_dir):
    return scoring.load_network(mesonet_dir / "Meso4_DF.h5", "meso4")


@pytest.fixture()
def crops():
    return np.random.RandomState(7).randint(0, 256, (3, 256, 256, 3)).astype(np.uint8)


def test_uint8_and_float32_signatures_score_the_same_crops_alike(tmp_path, meso4, crops):
    export_version(meso4, tmp_path, "current", 1)
    export_float32_version(meso4, tmp_path / "older", 1)
    server, manager = build_server("127.0.0.1:0", {"current": tmp_path / "current", "older": tmp_path / "older"},
                                   BatchingParameters(8, 1000, 1), poll_wait_s=0.2)
    manager.start()
    server.start()
    client = DetectorClient(f"127.0.0.1:{server.port}", timeout_s=30)
    try:
        assert client.input_dtype("current") == tf.uint8.as_datatype_enum
        assert client.input_dtype("older") == tf.float32.as_datatype_enum
        expected = scoring.Detector.from_keras(meso4).fake_probability(crops)
        np.testing.assert_allclose(client.predict(crops, "current").fake_probability, expected, atol=1e-5)
        np.testing.assert_allclose(client.predict(crops, "older").fake_probability, expected, atol=1e-5)
    finally:
        client.close()
        server.stop()
        manager.stop()


def test_a_new_version_with_another_input_dtype_is_followed_without_an_error(tmp_path, meso4, crops):
    export_version(meso4, tmp_path, "detector", 1)
    server, manager = build_server("127.0.0.1:0", {"detector": tmp_path / "detector"}, BatchingParameters(8, 1000, 1),
                                   poll_wait_s=0.2)
    manager.start()
    server.start()
    client = DetectorClient(f"127.0.0.1:{server.port}", timeout_s=30)
    try:
        assert client.predict(crops, "detector").version == 1
        export_float32_version(meso4, tmp_path / "staging", 2)
        shutil.move(tmp_path / "staging" / "2", tmp_path / "detector" / "2")
        deadline = time.monotonic() + 60
        while manager.get("detector").version != 2:
            assert time.monotonic() < deadline, "version 2 was never served"
            time.sleep(0.2)
        prediction = client.predict(crops, "detector")
        assert prediction.version == 2
        np.testing.assert_allclose(prediction.fake_probability,
                                   scoring.Detector.from_keras(meso4).fake_probability(crops), atol=1e-5)
    finally:
        client.close()
        server.stop()
        manager.stop()
