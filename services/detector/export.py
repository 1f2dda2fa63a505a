"""Exports a detector to a SavedModel in the layout TensorFlow Serving reads.

Layout: `<base>/<model>/<version>/` with a `serving_default` signature taking `image` uint8
[N, side, side, 3] (the face crops' pixels; the signature scales them by 1/255, as MesoNet's
training did, so a request carries a quarter of float32's bytes) and returning `fake_probability`
float32 [N]. Versions exported before took float32 in [0, 1]; the gateway reads each model's
signature and sends what it asks for. MesoNet's sigmoid means
"real", so the signature returns 1 minus it: every consumer downstream speaks probability of fake.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import keras
import tensorflow as tf

from services.detector.calibration import EPSILON, Platt

SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "fake_probability"


def export_saved_model(model: keras.Model, out_dir: str | os.PathLike, calibration: Platt | None = None) -> pathlib.Path:
    """Writes `model` as a SavedModel at `out_dir` (which must not exist), atomically.

    With `calibration`, the signature returns the calibrated probability of fake.

    The directory appears complete or not at all (written beside it, then renamed), so a model
    server polling the base path never loads half a version.
    """
    out_dir = pathlib.Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"{out_dir} already exists; versions are immutable")
    side = model.input_shape[1]
    archive = keras.export.ExportArchive()
    archive.track(model)

    def serve(image):
        pixels = tf.cast(image, tf.float32) / 255.0
        fake_probability = 1.0 - tf.reshape(model(pixels, training=False), [-1])
        if calibration is not None:
            p = tf.clip_by_value(fake_probability, EPSILON, 1.0 - EPSILON)
            fake_probability = tf.sigmoid(calibration.a * tf.math.log(p / (1.0 - p)) + calibration.b)
        return {OUTPUT_NAME: fake_probability}

    archive.add_endpoint(
        name=SIGNATURE,
        fn=serve,
        input_signature=[tf.TensorSpec([None, side, side, 3], tf.uint8, name=INPUT_NAME)],
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        archive.write_out(str(staging / "model"), verbose=False)
        os.rename(staging / "model", out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def versions(model_dir: str | os.PathLike) -> list[int]:
    """The version numbers present under `<base>/<model>`, ascending (TF Serving's rule: numeric names)."""
    model_dir = pathlib.Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def export_version(model: keras.Model, base_path: str | os.PathLike, name: str, version: int | None = None,
                   calibration: Platt | None = None) -> pathlib.Path:
    """Exports `model` as `<base>/<name>/<version>`; without `version`, one past the newest present."""
    model_dir = pathlib.Path(base_path) / name
    if version is None:
        version = (versions(model_dir) or [0])[-1] + 1
    return export_saved_model(model, model_dir / str(version), calibration)


def export_platform_models(base_path: str | os.PathLike, published_archs: tuple[str, ...] = ("meso4",),
                           mesonet_dir: pathlib.Path | None = None) -> list[pathlib.Path]:
    """Version 1 of what a local model server serves: ``detector`` (the platform's default detector,
    calibrated as its card says) and each of ``published_archs`` from the published MesoNet weights
    (from ``mesonet_dir``, else wherever `pretrained.default_weights` finds them)."""
    from services.detector import pretrained, scoring

    default = pretrained.default_detector()
    exported = [export_version(scoring.load_network(default.weights, default.arch), base_path,
                               pretrained.DEFAULT_DETECTOR_NAME, 1,
                               Platt(default.calibration["a"], default.calibration["b"]))]
    for arch in published_archs:
        weights = (mesonet_dir / pretrained.DEFAULT_WEIGHTS[arch]) if mesonet_dir else pretrained.default_weights(arch)
        exported.append(export_version(scoring.load_network(weights, arch), base_path, arch, 1))
    return exported
