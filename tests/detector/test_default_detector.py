"""The platform's default detector: committed, small, carded, and calibrated alike on every path."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image

from services.detector import pretrained, scoring


def test_default_detector_is_committed_small_and_carded():
    default = pretrained.default_detector()
    assert default.weights.stat().st_size < 20 * 1024 * 1024
    assert default.card["metrics"]["val"]["auc"] > 0.6
    assert set(default.calibration) == {"method", "a", "b"}
    assert (pretrained.DEFAULT_DETECTOR_DIR / "MODEL_CARD.md").exists()


def test_score_without_weights_gives_the_served_calibrated_probability(model_base_path, shared, tmp_path):
    crops = []
    for source in sorted((shared / "dfdc-faces" / "val" / "fake").iterdir())[:4]:
        target = tmp_path / f"{source.stem}.png"
        Image.open(source).convert("RGB").resize((256, 256), Image.BICUBIC).save(target)
        crops.append(target)
    result = subprocess.run([sys.executable, "-m", "dfp.cli.main", "detector", "score", "--no-face-crop", "--json",
                             *map(str, crops)], capture_output=True, text=True, check=True)
    offline = np.array([json.loads(line)["fake_probability"] for line in result.stdout.splitlines()])

    served = scoring.Detector.from_saved_model(model_base_path / pretrained.DEFAULT_DETECTOR_NAME / "1")
    batch = np.stack([np.asarray(Image.open(p), np.float32) / 255.0 for p in crops])
    np.testing.assert_allclose(offline, served.fake_probability(batch), atol=1e-5)


def test_export_without_arguments_writes_the_default_detector_as_a_tf_serving_version(tmp_path):
    result = subprocess.run([sys.executable, "-m", "dfp.cli.main", "detector", "export", "--base-path", str(tmp_path)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / pretrained.DEFAULT_DETECTOR_NAME / "1" / "saved_model.pb").exists()


def test_the_default_detector_registers_with_its_card_and_serves_as_it_scores_in_process(s3, shared, tmp_path):
    import os

    from dfp.config import StorageSettings
    from dfp.registry import ModelRegistry
    from dfp.storage import ObjectStore

    env = {**os.environ, **s3.env(), "DFP_BUCKET_PREFIX": "defaultreg"}
    result = subprocess.run([sys.executable, "-m", "dfp.cli.main", "detector", "register", "--default", "--name", "detector",
                             "--publish", "--json"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)["version"] == 1

    default = pretrained.default_detector()
    registry = ModelRegistry(ObjectStore(StorageSettings(s3.endpoint, s3.access_key, s3.secret_key, False, "defaultreg",
                                                         "us-east-1")))
    card = registry.card("detector", 1)
    assert card["metrics"] == default.card["metrics"] and card["inference"] == default.card["inference"]
    served = registry.download("detector", 1, tmp_path / "served")
    faces = [np.asarray(Image.open(p).convert("RGB").resize((256, 256), Image.BICUBIC), np.float32) / 255.0
             for p in sorted((shared / "dfdc-faces" / "val" / "fake").iterdir())[:4]]
    batch = np.stack(faces)
    served_scores = scoring.Detector.from_saved_model(served).fake_probability(batch)
    np.testing.assert_allclose(served_scores, scoring.Detector.platform_default().fake_probability(batch), atol=1e-5)
    assert default.card["inference"]["mirror_average"], "the committed default is served mirror-averaged"
    np.testing.assert_allclose(served_scores, scoring.Detector.from_saved_model(served).fake_probability(batch[:, :, ::-1]),
                               atol=1e-5)
