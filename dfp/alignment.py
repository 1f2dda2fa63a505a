"""Face alignment by five landmarks: a similarity transform (rotation, uniform scale, translation)
that puts the eyes, nose tip and mouth corners found by MTCNN on a canonical template, the warp into
an aligned square crop, and the warp back into the frame with a soft mask.

Used wherever a model works on aligned faces (face swap, face restoration) and its output must be
pasted back where the face was.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image

# Left eye, right eye, nose tip, left and right mouth corners in a unit square: the widely used
# 112x112 ArcFace alignment template, divided by 112.
TEMPLATE = np.array(
    [[0.3419, 0.4616], [0.6565, 0.4598], [0.5002, 0.6405], [0.3710, 0.8247], [0.6315, 0.8232]], dtype=np.float64
)


def template_points(size: int, coverage: float = 1.0) -> np.ndarray:
    """The template in a size x size crop; coverage > 1 zooms out to take in more of the head."""
    if coverage <= 0:
        raise ValueError("coverage must be positive")
    return ((TEMPLATE - 0.5) / coverage + 0.5) * size


def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 similarity matrix M minimising sum |M [s, 1] - t|^2 (Umeyama 1991, no reflection)."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 2 or len(source) < 2:
        raise ValueError(f"need matching (N>=2, 2) point sets, got {source.shape} and {target.shape}")
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    source_centred, target_centred = source - source_mean, target - target_mean
    covariance = target_centred.T @ source_centred / len(source)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    variance = (source_centred**2).sum() / len(source)
    if variance == 0:
        raise ValueError("the source points coincide")
    scale = (singular * np.diag(sign)).sum() / variance
    translation = target_mean - scale * rotation @ source_mean
    return np.hstack([scale * rotation, translation[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def warp(rgb: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb`` (HxWxC uint8 or float32 HxW) moved by ``matrix`` (input -> output pixel coordinates)
    into an output of (height, width); outside the input is black."""
    # PIL maps each output pixel back to the input, and takes pixel centres at +0.5.
    inverse = invert(matrix)
    shift = np.array([[1, 0, -0.5], [0, 1, -0.5], [0, 0, 1]])
    unshift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]])
    coefficients = (unshift @ np.vstack([inverse, [0, 0, 1]]) @ shift)[:2].ravel()
    image = Image.fromarray(rgb)
    height, width = size
    return np.asarray(image.transform((width, height), Image.AFFINE, tuple(coefficients), resample=Image.BICUBIC))


@dataclasses.dataclass(frozen=True)
class AlignedFace:
    image: np.ndarray  # size x size x 3 uint8
    matrix: np.ndarray  # 2x3, frame pixel coordinates -> aligned crop coordinates


def align_face(rgb: np.ndarray, landmarks, size: int, coverage: float = 1.0) -> AlignedFace:
    """The face with these five landmarks, aligned to the template in a size x size crop."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    if points.shape != (5, 2):
        raise ValueError(f"need the five MTCNN landmarks, got {points.shape}")
    matrix = similarity_transform(points, template_points(size, coverage))
    return AlignedFace(warp(rgb, matrix, (size, size)), matrix)


def crop_side(landmarks, coverage: float = 1.0) -> float:
    """The side, in frame pixels, of the aligned crop that ``align_face`` would take at scale 1: the
    face's own resolution, so a crop aligned at this side neither loses nor invents detail."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
    unit = template_points(1, coverage)
    return float(np.linalg.norm(points[1] - points[0]) / np.linalg.norm(unit[1] - unit[0]))


class LandmarkSmoother:
    """Steadies the five landmarks of one face across video frames, so that a face aligned by them
    does not jitter: an exponential moving average whose weight on the new landmarks grows with how
    far they moved (in inter-ocular distances). The detector's frame-to-frame noise (a few hundredths
    of the eye distance) is damped; a real head movement (``follow`` or more) is followed at once.
    A frame without a face starts the track again."""

    def __init__(self, damping: float = 0.6, follow: float = 0.08):
        self.damping = damping
        self.follow = follow
        self.points: np.ndarray | None = None

    def __call__(self, landmarks) -> np.ndarray | None:
        if landmarks is None:
            self.points = None
            return None
        points = np.asarray(landmarks, dtype=np.float64).reshape(-1, 2)
        if self.points is None:
            self.points = points
            return points.copy()
        eyes = max(float(np.linalg.norm(points[1] - points[0])), 1e-6)
        movement = float(np.linalg.norm(points - self.points, axis=1).mean()) / eyes
        weight = min(1.0, (1.0 - self.damping) + movement / self.follow)
        self.points = self.points + weight * (points - self.points)
        return self.points.copy()


def paste_aligned(frame: np.ndarray, face: np.ndarray, matrix: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``frame`` with the aligned ``face`` warped back where it came from, blended by ``mask``
    (float32 in [0,1] in the aligned crop; default: the whole crop with feathered edges)."""
    size = face.shape[0]
    if mask is None:
        ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 1) / max(1, size * 0.1), 0, 1)
        mask = (ramp[:, None] * ramp[None, :]).astype(np.float32)
    inverse = invert(matrix)
    shape = frame.shape[:2]
    back = warp(face, inverse, shape).astype(np.float32)
    alpha = warp(mask.astype(np.float32), inverse, shape)[..., None]
    blended = frame.astype(np.float32) * (1 - alpha) + back * alpha
    return np.clip(blended + 0.5, 0, 255).astype(np.uint8)
