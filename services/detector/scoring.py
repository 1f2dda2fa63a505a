"""Scores face crops with a detector, in-process: the pipeline that every path shares.

`Detector` wraps either Keras weights (.h5) or an exported SavedModel and answers probability of fake
for a batch of model-ready crops. `score_image` turns one RGB image into face scores, cropping faces
or not; the offline CLI, the benchmarks and tests call it, and the gateway follows the same steps with
the model behind TensorFlow Serving's API.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

import numpy as np

from dfp import faces as faces_lib
from dfp import media as media_lib
from services.detector import archs, mirror, pretrained
from services.detector.calibration import Platt
from services.detector.weights import load_h5_weights

# Which architecture a published weight file belongs to, by file name prefix.
_ARCH_BY_PREFIX = (("mesoinception", "mesoinception4"), ("meso4", "meso4"))


def _card_beside(path: pathlib.Path) -> dict | None:
    card = path.parent / "card.json"
    return json.loads(card.read_text()) if card.exists() else None


def arch_for_weights(path: str | os.PathLike) -> str | None:
    """The architecture of a weight file: from the training run or model card beside it, else its name."""
    path = pathlib.Path(path)
    run = path.parent / "run.json"
    if run.exists():
        return json.loads(run.read_text())["config"]["arch"]
    card = _card_beside(path)
    if card is not None:
        return card["architecture"]
    stem = path.name.lower()
    for prefix, arch in _ARCH_BY_PREFIX:
        if stem.startswith(prefix):
            return arch
    return None


def mirror_averaged_by_default(weights: str | os.PathLike) -> bool:
    """Whether the model card beside a weight file says to serve it mirror-averaged."""
    return mirror.card_asks_for_it(_card_beside(pathlib.Path(weights)) or {})


def load_network(weights: str | os.PathLike, arch: str | None = None, mirror_average: bool | None = None):
    """The Keras network of a weight file, mirror-averaged when `mirror_average` says so or, left
    None, when the model card beside the weights does (as the platform serves it)."""
    arch = arch or arch_for_weights(weights)
    if arch is None:
        raise ValueError(f"cannot tell the architecture of {weights}; pass --arch")
    network = archs.build(arch)
    load_h5_weights(network, weights)
    if mirror_average is None:
        mirror_average = mirror_averaged_by_default(weights)
    return mirror.mirror_averaged(network) if mirror_average else network


class Detector:
    """A detector model in process: `fake_probability(batch)` for [N, side, side, 3] crops, uint8 or
    float32 in [0, 1]."""

    def __init__(self, predict, input_size: int, description: str):
        self._predict = predict
        self.input_size = input_size
        self.description = description

    @classmethod
    def from_keras(cls, model, calibration: Platt | None = None, description: str = "") -> "Detector":
        """A Keras detector (sigmoid = real); raw probability of fake unless a calibration is given."""

        def predict(batch: np.ndarray) -> np.ndarray:
            if batch.dtype == np.uint8:
                batch = batch.astype(np.float32) / 255.0
            real = model(batch, training=False).numpy().reshape(-1)
            fake = 1.0 - real.astype(np.float64)
            return (calibration.apply(fake) if calibration else fake).astype(np.float32)

        return cls(predict, model.input_shape[1], description or model.name)

    @classmethod
    def from_h5(cls, path: str | os.PathLike, arch: str | None = None, calibration: Platt | None = None,
                description: str | None = None, mirror_average: bool | None = None) -> "Detector":
        """Raw .h5 weights give the raw probability unless a calibration is given; see `load_network`
        for mirror averaging."""
        if mirror_average is None:
            mirror_average = mirror_averaged_by_default(path)
        network = load_network(path, arch, mirror_average)
        description = description or f"{arch or arch_for_weights(path)}:{pathlib.Path(path).name}"
        return cls.from_keras(network, calibration, description + (" mirror-averaged" if mirror_average else ""))

    @classmethod
    def platform_default(cls) -> "Detector":
        """The platform's default detector, calibrated as when it is served."""
        default = pretrained.default_detector()
        platt = Platt(default.calibration["a"], default.calibration["b"])
        return cls.from_h5(default.weights, default.arch, platt, f"{pretrained.DEFAULT_DETECTOR_NAME}:default")

    @classmethod
    def from_saved_model(cls, path: str | os.PathLike) -> "Detector":
        import tensorflow as tf

        from services.detector.export import INPUT_NAME, OUTPUT_NAME, SIGNATURE

        loaded = tf.saved_model.load(str(path))
        signature = loaded.signatures[SIGNATURE]
        spec = signature.structured_input_signature[1][INPUT_NAME]
        side = int(spec.shape[1])

        def predict(batch: np.ndarray) -> np.ndarray:
            if spec.dtype == tf.uint8 and batch.dtype != np.uint8:  # the signature scales by 1/255 itself
                batch = np.rint(batch * 255.0).astype(np.uint8)
            elif spec.dtype == tf.float32 and batch.dtype == np.uint8:
                batch = batch.astype(np.float32) / 255.0
            return signature(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()

        return cls(predict, side, f"savedmodel:{path}")

    @classmethod
    def load(cls, weights: str | os.PathLike, arch: str | None = None, mirror_average: bool | None = None) -> "Detector":
        if pathlib.Path(weights).is_dir():
            if mirror_average is not None:
                raise ValueError(f"{weights} is a SavedModel: whether it mirror-averages was fixed when it was exported")
            return cls.from_saved_model(weights)
        return cls.from_h5(weights, arch, mirror_average=mirror_average)

    def fake_probability(self, batch: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Probability of fake per crop: float32 in [0, 1], or uint8 crops (scaled by 1/255 one chunk
        at a time by the model that needs it, so a whole dataset never sits in memory as float32)."""
        if len(batch) == 0:
            return np.zeros((0,), np.float32)
        chunks = []
        for start in range(0, len(batch), batch_size):
            chunks.append(self._predict(batch[start : start + batch_size]))
        return np.concatenate(chunks)


@dataclasses.dataclass(frozen=True)
class FaceResult:
    box: tuple[float, float, float, float]
    detection_confidence: float
    fake_probability: float


def crops_for_image(
    rgb: np.ndarray,
    input_size: int,
    face_detector: faces_lib.FaceDetector | None,
) -> tuple[list[faces_lib.Face], np.ndarray]:
    """Faces and their model-ready crops [N, side, side, 3] uint8; without a face detector, the whole image."""
    if face_detector is None:
        return faces_lib.whole_image_as_face(rgb, input_size)
    return faces_lib.face_crops(rgb, face_detector.detect(rgb), input_size)


def score_image(
    rgb: np.ndarray,
    detector: Detector,
    face_detector: faces_lib.FaceDetector | None,
) -> list[FaceResult]:
    found, crops = crops_for_image(rgb, detector.input_size, face_detector)
    probabilities = detector.fake_probability(crops)
    return [FaceResult(f.box, f.confidence, float(p)) for f, p in zip(found, probabilities)]


@dataclasses.dataclass(frozen=True)
class VideoResult:
    frames_sampled: int
    frames_with_faces: int
    mean_fake_probability: float | None  # over frames, each frame's most fake face
    max_fake_probability: float | None


def score_video(path: str | os.PathLike, detector: Detector, face_detector: faces_lib.FaceDetector,
                frame_count: int = 24) -> VideoResult:
    """Probability of fake of a video: `frame_count` frames spread over it, faces found in each."""
    per_frame = []
    sampled = 0
    for frame in media_lib.sample_frames(path, frame_count=frame_count):
        sampled += 1
        results = score_image(frame.rgb, detector, face_detector)
        if results:
            per_frame.append(max(r.fake_probability for r in results))
    if not per_frame:
        return VideoResult(sampled, 0, None, None)
    return VideoResult(sampled, len(per_frame), float(np.mean(per_frame)), float(np.max(per_frame)))
