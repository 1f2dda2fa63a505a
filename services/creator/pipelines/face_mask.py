"""Where a swapped face may replace the target's: the decoder's predicted mask, cut down to the
target's own face.

The swap decoders learn one fixed oval in the aligned crop, which on a real head reaches into the
hair, the ears and the background, so a swap pasted with it shows a face-coloured oval over them.
Here the oval is intersected with the target face's skin: pixels whose colour (YCrCb) lies within
the spread of the skin sampled between the eyes and the mouth, connected to the inner face, with
the holes that eyes, brows and lips leave filled. The inner face (brows to lips, from the alignment
template) is always kept, so a face whose skin sample fails (a beard, a hand, harsh light) still
gets its features swapped. Everything is in aligned-crop coordinates, where the landmarks sit on the
template, so no per-frame landmarks are needed."""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

from dfp import alignment

# Bounds on the sample's robust spread (YCrCb levels): a very even skin sample should not make the
# model too strict, and a sample that is not skin (a beard, a hand, glasses) should not make it
# accept every colour.
MIN_LUMA_SPREAD, MAX_LUMA_SPREAD = 10.0, 30.0
MIN_CHROMA_SPREAD, MAX_CHROMA_SPREAD = 3.0, 8.0
# Distances, in robust standard deviations, still counted as skin; luma varies more with shading.
LUMA_TOLERANCE = 4.0
CHROMA_TOLERANCE = 3.0


def _landmark_frame(side: int, coverage: float):
    """Eye-line y, mouth-line y, face centre x and inter-ocular distance in the aligned crop."""
    points = alignment.template_points(side, coverage)
    eyes_y = float(points[:2, 1].mean())
    mouth_y = float(points[3:, 1].mean())
    centre_x = float(points[:2, 0].mean())
    eye_distance = float(np.linalg.norm(points[1] - points[0]))
    return points, eyes_y, mouth_y, centre_x, eye_distance


def inner_face(side: int, coverage: float) -> np.ndarray:
    """(side, side) bool: an ellipse from the brows to below the lower lip, past the outer eye corners."""
    _, eyes_y, mouth_y, centre_x, eye_distance = _landmark_frame(side, coverage)
    top = eyes_y - 0.5 * eye_distance
    bottom = mouth_y + 0.35 * eye_distance
    half_height = (bottom - top) / 2
    half_width = 1.0 * eye_distance
    y, x = np.mgrid[0:side, 0:side].astype(np.float64) + 0.5
    return ((x - centre_x) / half_width) ** 2 + ((y - (top + half_height)) / half_height) ** 2 <= 1.0


def skin_sample_box(side: int, coverage: float) -> tuple[slice, slice]:
    """Rows and columns of the cheeks and nose between the eyes and the mouth."""
    points, eyes_y, mouth_y, _, _ = _landmark_frame(side, coverage)
    span = mouth_y - eyes_y
    rows = slice(int(eyes_y + 0.3 * span), max(int(eyes_y + 0.3 * span) + 1, int(mouth_y - 0.15 * span)))
    cols = slice(int(points[0, 0]), max(int(points[0, 0]) + 1, int(points[1, 0])))
    return rows, cols


def skin(face: np.ndarray, coverage: float) -> np.ndarray:
    """(S, S) bool: the pixels of the aligned ``face`` (S x S x 3 uint8 RGB) coloured like its skin."""
    side = face.shape[0]
    ycrcb = cv2.cvtColor(np.ascontiguousarray(face), cv2.COLOR_RGB2YCrCb).astype(np.float32)
    rows, cols = skin_sample_box(side, coverage)
    sample = ycrcb[rows, cols].reshape(-1, 3)
    centre = np.median(sample, axis=0)
    spread = 1.4826 * np.median(np.abs(sample - centre), axis=0)
    spread = np.clip(spread, [MIN_LUMA_SPREAD, MIN_CHROMA_SPREAD, MIN_CHROMA_SPREAD],
                     [MAX_LUMA_SPREAD, MAX_CHROMA_SPREAD, MAX_CHROMA_SPREAD])
    tolerance = np.array([LUMA_TOLERANCE, CHROMA_TOLERANCE, CHROMA_TOLERANCE], np.float32)
    distance = (((ycrcb - centre) / (spread * tolerance)) ** 2).sum(axis=-1)
    return distance <= 1.0


def target_face(face: np.ndarray, coverage: float) -> np.ndarray:
    """(S, S) bool: the target's face in its aligned crop: its skin connected to the inner face, the
    holes in it filled, and the inner face itself."""
    side = face.shape[0]
    core = inner_face(side, coverage)
    radius = max(1, side // 96)
    structure = ndimage.generate_binary_structure(2, 1)
    region = ndimage.binary_opening(skin(face, coverage), structure, iterations=radius)
    labels, _ = ndimage.label(region | core)
    region = np.isin(labels, np.unique(labels[core]))
    region = ndimage.binary_closing(region, structure, iterations=2 * radius, border_value=0)
    return ndimage.binary_fill_holes(region) | core


def blend_mask(predicted: np.ndarray, face: np.ndarray, coverage: float) -> np.ndarray:
    """The decoder's ``predicted`` mask (S x S float32) limited to ``face``'s own face region, with a
    soft edge of about 2% of the side, so the later erosion and feathering start from the real face."""
    region = target_face(face, coverage).astype(np.float32)
    soft = cv2.GaussianBlur(region, (0, 0), max(0.5, face.shape[0] * 0.02))
    return (np.clip(predicted, 0.0, 1.0) * soft).astype(np.float32)
