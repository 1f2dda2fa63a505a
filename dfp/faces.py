"""Faces: find them, crop them, and resize crops to a model's input.

`resize_to_model_pixels` is the one resize used on every path that feeds a detector (offline scoring,
the gateway, training), so a face crop reaches the model identically whichever way it came. Crops
stay uint8 until the model scales them by 1/255 (in the served signature, or in `Detector`): a
quarter of float32's bytes on the wire, and the same numbers.
Face finding uses MTCNN from facenet-pytorch, whose weights ship inside its wheel (no download).
"""

from __future__ import annotations

import dataclasses
import sys
import threading

import numpy as np
from PIL import Image

if "tensorflow" in sys.modules and "triton" not in sys.modules:
    # torchvision.ops imports triton, whose LLVM clashes with TensorFlow's when TensorFlow is loaded
    # first: the process dies with a segmentation fault. Import dfp.faces before TensorFlow.
    raise ImportError("dfp.faces must be imported before tensorflow (torch/triton after TF crashes)")

from facenet_pytorch import MTCNN  # noqa: E402  (after the guard above, on purpose)

# MesoNet's input side; detectors with another input size pass theirs.
MODEL_INPUT_SIZE = 256
# The crop is the face box grown by this fraction of its side on every side: MesoNet was trained on
# crops that include the face's outline, not only the inner face.
DEFAULT_MARGIN = 0.3


@dataclasses.dataclass(frozen=True)
class Face:
    """A face found in an image: box (x_min, y_min, x_max, y_max) in pixels, detector confidence."""

    box: tuple[float, float, float, float]
    confidence: float
    landmarks: tuple[tuple[float, float], ...] = ()

    @property
    def side(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def resize_to_model_pixels(rgb: np.ndarray, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """RGB uint8 HxWx3 -> uint8 size x size x 3.

    An input that already has the model's size goes in untouched; any other is resized with bilinear
    filtering over the whole image.
    """
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected RGB uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
    if rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
    return rgb


def resize_to_model_input(rgb: np.ndarray, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """RGB uint8 HxWx3 -> float32 size x size x 3 in [0, 1]: the model pixels scaled by 1/255, as
    MesoNet's training did."""
    return resize_to_model_pixels(rgb, size).astype(np.float32) / 255.0


def square_crop_box(
    box: tuple[float, float, float, float], image_size: tuple[int, int], margin: float = DEFAULT_MARGIN
) -> tuple[int, int, int]:
    """(left, top, side) of the square around `box` grown by `margin`, shifted to stay inside an
    image of (height, width) where it fits."""
    height, width = image_size
    x_min, y_min, x_max, y_max = box
    side = max(x_max - x_min, y_max - y_min) * (1.0 + 2.0 * margin)
    side = max(1, min(int(round(side)), width, height))
    center_x, center_y = (x_min + x_max) / 2.0, (y_min + y_max) / 2.0
    left = int(round(center_x - side / 2.0))
    top = int(round(center_y - side / 2.0))
    left = min(max(left, 0), width - side)
    top = min(max(top, 0), height - side)
    return left, top, side


def crop_face(rgb: np.ndarray, box: tuple[float, float, float, float], margin: float = DEFAULT_MARGIN) -> np.ndarray:
    """A square crop around `box`, grown by `margin`, shifted to stay inside the image where it fits."""
    left, top, side = square_crop_box(box, rgb.shape[:2], margin)
    return rgb[top : top + side, left : left + side]


def face_crops(
    rgb: np.ndarray,
    found: list[Face],
    input_size: int = MODEL_INPUT_SIZE,
    min_face_size: int = 40,
    min_confidence: float = 0.9,
) -> tuple[list[Face], np.ndarray]:
    """The faces that pass the size and confidence floors, and their model-ready crops [N, s, s, 3] uint8."""
    kept = [f for f in found if f.side >= min_face_size and f.confidence >= min_confidence]
    if not kept:
        return [], np.zeros((0, input_size, input_size, 3), np.uint8)
    return kept, np.stack([resize_to_model_pixels(crop_face(rgb, f.box), input_size) for f in kept])


def whole_image_as_face(rgb: np.ndarray, input_size: int = MODEL_INPUT_SIZE) -> tuple[list[Face], np.ndarray]:
    """The whole image as the one face crop (uint8), for inputs that already are face crops."""
    height, width = rgb.shape[:2]
    whole = Face(box=(0.0, 0.0, float(width), float(height)), confidence=1.0)
    return [whole], resize_to_model_pixels(rgb, input_size)[None]


class FaceDetector:
    """MTCNN face detection on RGB uint8 images; thread-safe."""

    def __init__(self, min_face_size: int = 20, device: str = "cpu"):
        self._mtcnn = MTCNN(keep_all=True, select_largest=False, min_face_size=min_face_size, device=device)
        self._lock = threading.Lock()

    def detect(self, rgb: np.ndarray) -> list[Face]:
        return self.detect_batch([rgb])[0]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """Faces per image, most confident first. Images of the same size go through MTCNN together."""
        results: list[list[Face] | None] = [None] * len(images)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for index, image in enumerate(images):
            by_shape.setdefault(image.shape, []).append(index)
        for indices in by_shape.values():
            batch = np.stack([images[i] for i in indices])
            with self._lock:
                boxes, probs, points = self._mtcnn.detect(batch, landmarks=True)
            for slot, index in enumerate(indices):
                results[index] = _faces_from_mtcnn(boxes[slot], probs[slot], points[slot])
        return [faces or [] for faces in results]


def _faces_from_mtcnn(boxes, probs, points) -> list[Face]:
    if boxes is None:
        return []
    # facenet-pytorch returns object arrays under numpy 2; cast before use.
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    probs = np.asarray(probs, dtype=np.float32).reshape(-1)
    points = np.asarray(points, dtype=np.float32).reshape(-1, 5, 2)
    faces = [
        Face(
            box=tuple(float(v) for v in box),
            confidence=float(prob),
            landmarks=tuple((float(x), float(y)) for x, y in landmark),
        )
        for box, prob, landmark in zip(boxes, probs, points)
    ]
    return sorted(faces, key=lambda face: face.confidence, reverse=True)


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    x_min, y_min = max(a[0], b[0]), max(a[1], b[1])
    x_max, y_max = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x_max - x_min) * max(0.0, y_max - y_min)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class FaceTracker:
    """Links faces across sampled frames into tracks by box overlap (greedy, highest IoU first).

    A track is kept for `max_gap` sampled frames without a match, so a missed detection does not
    split one person into two tracks.
    """

    def __init__(self, min_iou: float = 0.3, max_gap: int = 5):
        self._min_iou = min_iou
        self._max_gap = max_gap
        self._tracks: dict[int, tuple[tuple[float, float, float, float], int]] = {}
        self._next_id = 1
        self._step = 0

    def update(self, faces: list[Face]) -> list[int]:
        """Track ids, from 1, for the faces of the next sampled frame, in the order given."""
        self._step += 1
        live = {
            track_id: box
            for track_id, (box, last_seen) in self._tracks.items()
            if self._step - last_seen <= self._max_gap
        }
        pairs = sorted(
            ((iou(box, face.box), track_id, index) for track_id, box in live.items() for index, face in enumerate(faces)),
            reverse=True,
        )
        assigned: dict[int, int] = {}
        used_tracks: set[int] = set()
        for overlap, track_id, index in pairs:
            if overlap < self._min_iou:
                break
            if index in assigned or track_id in used_tracks:
                continue
            assigned[index] = track_id
            used_tracks.add(track_id)
        ids = []
        for index, face in enumerate(faces):
            track_id = assigned.get(index)
            if track_id is None:
                track_id = self._next_id
                self._next_id += 1
            self._tracks[track_id] = (face.box, self._step)
            ids.append(track_id)
        return ids
