"""Five-point face alignment: the transform, the warp, and the way back."""

import numpy as np
import pytest

from dfp import alignment
from dfp.faces import FaceDetector
from dfp.media import decode_image


def test_similarity_transform_recovers_a_known_rotation_scale_and_shift():
    angle, scale, shift = 0.3, 1.7, np.array([12.0, -5.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = alignment.template_points(100)
    moved = points @ (scale * rotation).T + shift
    matrix = alignment.similarity_transform(points, moved)
    np.testing.assert_allclose(matrix[:, :2], scale * rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)


def test_mirrored_points_give_a_rotation_not_a_reflection():
    points = alignment.template_points(100)
    mirrored = points * np.array([-1.0, 1.0])
    matrix = alignment.similarity_transform(points, mirrored)
    assert np.linalg.det(matrix[:, :2]) > 0


def test_warp_moves_pixels_by_the_matrix():
    image = np.zeros((40, 40, 3), np.uint8)
    image[10, 20] = 255
    shifted = alignment.warp(image, np.array([[1.0, 0, 5], [0, 1.0, 3]]), (40, 40))
    assert np.unravel_index(shifted[..., 0].argmax(), (40, 40)) == (13, 25)


@pytest.fixture(scope="module")
def portrait(shared):
    return decode_image(shared / "video" / "source" / "s0.jpg", 50_000_000)


def test_an_aligned_face_has_its_landmarks_on_the_template(portrait):
    detector = FaceDetector()
    face = max(detector.detect(portrait), key=lambda f: f.side)
    aligned = alignment.align_face(portrait, face.landmarks, 128, coverage=1.5)
    found = max(detector.detect(aligned.image), key=lambda f: f.confidence)
    error = np.linalg.norm(np.asarray(found.landmarks) - alignment.template_points(128, 1.5), axis=1)
    assert error.max() < 128 * 0.05


def test_pasting_the_aligned_face_back_leaves_the_frame_nearly_unchanged(portrait):
    detector = FaceDetector()
    face = max(detector.detect(portrait), key=lambda f: f.side)
    aligned = alignment.align_face(portrait, face.landmarks, 128, coverage=1.5)
    restored = alignment.paste_aligned(portrait, aligned.image, aligned.matrix)
    changed = np.abs(restored.astype(int) - portrait.astype(int))
    assert changed.mean() < 1.0
    assert np.array_equal(restored[:10, :10], portrait[:10, :10])


def test_wrong_landmark_counts_are_refused():
    with pytest.raises(ValueError, match="five"):
        alignment.align_face(np.zeros((10, 10, 3), np.uint8), [(1, 2)] * 4, 32)
