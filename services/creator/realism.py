"""How realistic a made video is, from its frames, the driving frames and the source face.

Five measures, each computed with MTCNN's face boxes and five landmarks (eyes, nose, mouth
corners), so that animation and face swap are measured alike:

- sharpness: variance of the Laplacian of the made face, over that of the reference face at the
  same size (the made face is resized to the reference's face box); 1.0 is as sharp as the source,
  a soft, upscaled face scores far below. The reference is the source still for animation, and the
  target frame itself for face swap (the face that was replaced).
- motion fidelity: Pearson correlation between the driving face's landmark motion and the made
  face's, each landmark's displacement from the first frame divided by that video's inter-ocular
  distance, pooled over frames and coordinates.
- identity: RMS distance between the made face's landmarks and the source face's after a
  similarity alignment (translation, rotation, scale removed), in inter-ocular distances; beside it
  the same distance for the driving face, which a made face that kept no identity would match.
- flicker: mean absolute change of the face region between consecutive frames (in [0, 1] per
  pixel), over the driving clip's; 1.0 changes as much as the real clip does.
- faces found: the share of made frames where a face is found.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from dfp import faces as faces_lib

# The region whose frame-to-frame change is the flicker, resized to one size for every video.
FLICKER_SIDE = 128
MIN_CONFIDENCE = 0.9
REFERENCES = ("source", "driving")


@dataclasses.dataclass
class RealismReport:
    frames: int
    faces_found: float
    sharpness_ratio: float | None
    motion_correlation: float | None
    identity_distance: float | None
    driving_identity_distance: float | None
    flicker_ratio: float | None
    made_flicker: float | None
    driving_flicker: float | None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def laplacian_variance(rgb: np.ndarray) -> float:
    gray = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY).astype(np.float64)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def face_crop(rgb: np.ndarray, face: faces_lib.Face) -> np.ndarray:
    """The face's own box (no margin), squared and kept inside the image."""
    left, top, side = faces_lib.square_crop_box(face.box, rgb.shape[:2], 0.0)
    return rgb[top : top + side, left : left + side]


def sharpness_ratio(made_face: np.ndarray, reference_face: np.ndarray) -> float:
    """Laplacian variance of ``made_face`` resized to ``reference_face``'s size, over the reference's."""
    height, width = reference_face.shape[:2]
    if made_face.shape[:2] != (height, width):
        made_face = np.asarray(Image.fromarray(made_face).resize((width, height), Image.BICUBIC))
    reference = laplacian_variance(reference_face)
    return laplacian_variance(made_face) / reference if reference > 0 else float("nan")


def _landmarks(face: faces_lib.Face) -> np.ndarray:
    return np.asarray(face.landmarks, dtype=np.float64)


def inter_ocular(points: np.ndarray) -> float:
    return float(np.linalg.norm(points[1] - points[0]))


def aligned_distance(points: np.ndarray, target: np.ndarray) -> float:
    """RMS distance from ``points`` to ``target`` after the best similarity transform of ``points``,
    in units of the target's inter-ocular distance (Umeyama's least-squares alignment)."""
    a = points - points.mean(axis=0)
    b = target - target.mean(axis=0)
    covariance = b.T @ a / len(a)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (a ** 2).sum() / len(a)
    scale = float(np.trace(np.diag(singular) @ sign) / variance) if variance > 0 else 1.0
    aligned = scale * a @ rotation.T
    return float(np.sqrt(((aligned - b) ** 2).sum(axis=1).mean()) / max(inter_ocular(target), 1e-6))


def motion_correlation(driving: list[np.ndarray | None], made: list[np.ndarray | None]) -> float | None:
    """Correlation of landmark motion (from each video's first frame with a face, in that frame's
    inter-ocular distances) over the frames where both have a face."""
    first = next((i for i, (d, m) in enumerate(zip(driving, made)) if d is not None and m is not None), None)
    if first is None:
        return None
    d0, m0 = driving[first], made[first]
    d_motion, m_motion = [], []
    for d, m in zip(driving[first + 1 :], made[first + 1 :]):
        if d is None or m is None:
            continue
        d_motion.append(((d - d0) / inter_ocular(d0)).ravel())
        m_motion.append(((m - m0) / inter_ocular(m0)).ravel())
    if len(d_motion) < 2:
        return None
    x, y = np.concatenate(d_motion), np.concatenate(m_motion)
    if x.std() == 0 or y.std() == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


class FlickerMeter:
    """Mean absolute change of one fixed face region between consecutive frames."""

    def __init__(self):
        self.box = None
        self.previous = None
        self.total = 0.0
        self.count = 0

    def add(self, rgb: np.ndarray, face: faces_lib.Face | None) -> None:
        if self.box is None:
            if face is None:
                return
            self.box = faces_lib.square_crop_box(face.box, rgb.shape[:2], 0.0)
        left, top, side = self.box
        region = np.asarray(Image.fromarray(rgb[top : top + side, left : left + side])
                            .resize((FLICKER_SIDE, FLICKER_SIDE), Image.BILINEAR), np.float32) / 255.0
        if self.previous is not None:
            self.total += float(np.abs(region - self.previous).mean())
            self.count += 1
        self.previous = region

    @property
    def value(self) -> float | None:
        return self.total / self.count if self.count else None


def largest_face(found: list[faces_lib.Face]) -> faces_lib.Face | None:
    confident = [f for f in found if f.confidence >= MIN_CONFIDENCE and len(f.landmarks) == 5]
    return max(confident, key=lambda f: f.side, default=None)


def _median(values: list[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.median(finite)) if finite else None


def measure(made: Iterable[np.ndarray], driving: Iterable[np.ndarray], source: np.ndarray,
            detector: faces_lib.FaceDetector, sharpness_reference: str = "source") -> RealismReport:
    """Realism of the ``made`` frames, made from ``source`` (the identity) driven by ``driving``
    (frame for frame). ``sharpness_reference`` is "source" (animation: the still) or "driving"
    (face swap: the target frame whose face was replaced)."""
    if sharpness_reference not in REFERENCES:
        raise ValueError(f"sharpness_reference must be one of {', '.join(REFERENCES)}")
    source_face = largest_face(detector.detect(source))
    if source_face is None:
        raise ValueError("no face found in the source image")
    source_crop = face_crop(source, source_face)
    source_points = _landmarks(source_face)
    frames = 0
    found = 0
    sharpness, identity, driving_identity = [], [], []
    driving_points: list[np.ndarray | None] = []
    made_points: list[np.ndarray | None] = []
    made_flicker, driving_flicker = FlickerMeter(), FlickerMeter()
    for made_rgb, driving_rgb in zip(made, driving):
        frames += 1
        made_face, driving_face = (largest_face(faces) for faces in detector.detect_batch([made_rgb, driving_rgb]))
        made_flicker.add(made_rgb, made_face)
        driving_flicker.add(driving_rgb, driving_face)
        driving_points.append(None if driving_face is None else _landmarks(driving_face))
        made_points.append(None if made_face is None else _landmarks(made_face))
        if driving_face is not None:
            driving_identity.append(aligned_distance(_landmarks(driving_face), source_points))
        if made_face is None:
            continue
        found += 1
        identity.append(aligned_distance(_landmarks(made_face), source_points))
        if sharpness_reference == "source":
            reference = source_crop
        elif driving_face is not None:
            reference = face_crop(driving_rgb, driving_face)
        else:
            continue
        sharpness.append(sharpness_ratio(face_crop(made_rgb, made_face), reference))
    if frames == 0:
        raise ValueError("no frames to measure")
    flicker = made_flicker.value
    reference_flicker = driving_flicker.value
    return RealismReport(
        frames=frames,
        faces_found=found / frames,
        sharpness_ratio=_median(sharpness),
        motion_correlation=motion_correlation(driving_points, made_points),
        identity_distance=_median(identity),
        driving_identity_distance=_median(driving_identity),
        flicker_ratio=(flicker / reference_flicker) if flicker is not None and reference_flicker else None,
        made_flicker=flicker,
        driving_flicker=reference_flicker,
    )
