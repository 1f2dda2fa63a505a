"""Mirror averaging: one score per face from the face and its mirror image, alike on every path."""

import json

import numpy as np
import pytest

from services.detector import archs, scoring
from services.detector.calibration import Platt
from services.detector.export import export_saved_model
from services.detector.mirror import mirror_averaged
from services.detector.weights import save_h5_weights


@pytest.fixture()
def faces():
    """Random crops (float32 in [0, 1] from uint8 pixels, as the served signature sees them): left and
    right differ, so a single view scores a crop and its mirror apart."""
    return np.random.default_rng(3).integers(0, 256, (4, 256, 256, 3), dtype=np.uint8).astype(np.float32) / 255.0


@pytest.fixture()
def carded_weights(tmp_path):
    """Meso4 weights with a card beside them that asks for mirror averaging."""
    folder = tmp_path / "model"
    folder.mkdir()
    network = archs.build("meso4")
    network.set_weights([w + np.random.default_rng(i).normal(0, 0.05, w.shape).astype(w.dtype)
                         for i, w in enumerate(network.get_weights())])
    save_h5_weights(network, folder / "weights.h5")
    (folder / "card.json").write_text(json.dumps({"architecture": "meso4", "inference": {"mirror_average": True}}))
    return folder / "weights.h5"


def test_a_mirror_averaged_network_scores_a_face_and_its_mirror_alike(faces, carded_weights):
    network = scoring.load_network(carded_weights, mirror_average=False)
    single, single_mirrored = network(faces).numpy(), network(faces[:, :, ::-1]).numpy()
    assert np.abs(single - single_mirrored).max() > 1e-4, "the test crops must not be symmetric for the network"
    averaged = mirror_averaged(network)
    np.testing.assert_allclose(averaged(faces).numpy(), (single + single_mirrored) / 2, atol=1e-6)
    np.testing.assert_allclose(averaged(faces).numpy(), averaged(faces[:, :, ::-1]).numpy(), atol=1e-6)


def test_the_card_beside_the_weights_decides_unless_told_otherwise(faces, carded_weights):
    as_carded = scoring.Detector.from_h5(carded_weights)
    one_view = scoring.Detector.from_h5(carded_weights, mirror_average=False)
    assert as_carded.description.endswith("mirror-averaged") and not one_view.description.endswith("mirror-averaged")
    np.testing.assert_allclose(as_carded.fake_probability(faces), as_carded.fake_probability(faces[:, :, ::-1]), atol=1e-6)
    assert np.abs(one_view.fake_probability(faces) - as_carded.fake_probability(faces)).max() > 1e-5


def test_the_exported_signature_averages_and_calibrates_as_the_in_process_detector_does(faces, carded_weights, tmp_path):
    platt = Platt(0.6, 0.1)
    saved = export_saved_model(scoring.load_network(carded_weights), tmp_path / "saved", platt)
    served = scoring.Detector.from_saved_model(saved).fake_probability(faces)
    in_process = scoring.Detector.from_h5(carded_weights, calibration=platt).fake_probability(faces)
    np.testing.assert_allclose(served, in_process, atol=1e-5)
    np.testing.assert_allclose(served, scoring.Detector.from_saved_model(saved).fake_probability(faces[:, :, ::-1]),
                               atol=1e-5)
