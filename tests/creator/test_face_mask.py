"""The swap's blend mask: the decoder's oval cut to the target face's own skin, its features kept."""

import numpy as np

from dfp import alignment
from services.creator.pipelines import face_mask
from services.creator.training.losses_swap import face_ellipse

SIDE, COVERAGE = 128, 1.6
SKIN, HAIR, BACKGROUND = (205, 150, 125), (60, 40, 30), (40, 160, 60)


def _ellipse(centre, half_axes):
    y, x = np.mgrid[0:SIDE, 0:SIDE] + 0.5
    return ((x - centre[0]) / half_axes[0]) ** 2 + ((y - centre[1]) / half_axes[1]) ** 2 <= 1


def synthetic_face():
    """An aligned crop: green background, a skin-coloured face around the template's landmarks,
    dark hair over its top, dark eyes and red lips; returns it and the face's own region."""
    points = alignment.template_points(SIDE, COVERAGE)
    eye_distance = np.linalg.norm(points[1] - points[0])
    centre_x, eyes_y = points[:2, 0].mean(), points[:2, 1].mean()
    head = _ellipse((centre_x, eyes_y + 0.3 * eye_distance), (1.1 * eye_distance, 1.75 * eye_distance))
    hair = head & (np.mgrid[0:SIDE, 0:SIDE][0] + 0.5 < eyes_y - 0.9 * eye_distance)
    face = head & ~hair
    image = np.empty((SIDE, SIDE, 3), np.uint8)
    image[:] = BACKGROUND
    image[head] = HAIR
    image[face] = SKIN
    for eye in points[:2]:
        image[_ellipse(eye, (0.18 * eye_distance, 0.08 * eye_distance))] = (30, 25, 20)
    image[_ellipse(points[3:].mean(axis=0), (0.4 * eye_distance, 0.1 * eye_distance))] = (170, 50, 60)
    noise = np.random.default_rng(0).normal(0, 3, image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), face


def test_the_mask_keeps_the_targets_skin_and_features_and_leaves_hair_and_background_out():
    image, face = synthetic_face()
    oval = face_ellipse(SIDE)[0, 0].numpy()
    mask = face_mask.blend_mask(oval, image, COVERAGE)
    inside_oval = oval > 0.5
    assert (mask[face & inside_oval] > 0.5).mean() > 0.9
    outside = inside_oval & ~face
    assert outside.mean() > 0.1  # the oval reaches well past this face
    assert (mask[outside] > 0.5).mean() < 0.1
    features = face_mask.inner_face(SIDE, COVERAGE)
    assert (mask[features & inside_oval] > 0.5).all()
    assert mask.max() <= oval.max() + 1e-6


def test_a_face_whose_skin_cannot_be_sampled_still_gets_its_features_swapped():
    image, _ = synthetic_face()
    image[:] = np.random.default_rng(1).integers(0, 256, image.shape, dtype=np.uint8)
    region = face_mask.target_face(image, COVERAGE)
    features = face_mask.inner_face(SIDE, COVERAGE)
    assert region[features].all()
    assert region.mean() < 2 * features.mean()
