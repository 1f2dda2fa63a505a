"""The realism measures give the answers they must on inputs whose answer is known."""

import itertools

import numpy as np
import pytest
from PIL import Image, ImageFilter

from dfp import faces as faces_lib
from dfp import media
from services.creator import realism


@pytest.fixture(scope="module")
def detector():
    return faces_lib.FaceDetector()


@pytest.fixture(scope="module")
def portrait(shared):
    return np.asarray(Image.open(shared / "video" / "source" / "s0.jpg").convert("RGB"))


def test_the_source_itself_is_as_sharp_as_the_source_and_keeps_its_identity(portrait, detector):
    report = realism.measure([portrait] * 3, [portrait] * 3, portrait, detector)
    assert report.frames == 3 and report.faces_found == 1.0
    assert report.sharpness_ratio == pytest.approx(1.0)
    assert report.identity_distance == pytest.approx(0.0, abs=1e-6)
    assert report.made_flicker == 0.0


def test_a_blurred_copy_scores_a_low_sharpness(portrait, detector):
    blurred = np.asarray(Image.fromarray(portrait).filter(ImageFilter.GaussianBlur(3)))
    # As soft as the 64x64 model's pasted face: the face reduced to 64 pixels and scaled back up.
    small = Image.fromarray(portrait).resize((portrait.shape[1] // 4, portrait.shape[0] // 4), Image.BICUBIC)
    upscaled = np.asarray(small.resize((portrait.shape[1], portrait.shape[0]), Image.BICUBIC))
    for made in (blurred, upscaled):
        report = realism.measure([made] * 2, [portrait] * 2, portrait, detector)
        assert report.faces_found == 1.0
        assert report.sharpness_ratio < 0.3


def test_a_video_that_copies_the_driving_clip_follows_its_motion_exactly(shared, portrait, detector):
    clip = shared / "video" / "driving" / "d12.mp4"
    frames = list(itertools.islice(media.iter_video_frames(clip), 0, 60, 6))
    report = realism.measure(frames, frames, portrait, detector, sharpness_reference="driving")
    assert report.motion_correlation == pytest.approx(1.0)
    assert report.sharpness_ratio == pytest.approx(1.0)
    assert report.flicker_ratio == pytest.approx(1.0)
    # The driver's landmarks are another person's: farther from the portrait's than the portrait's own.
    assert report.identity_distance == pytest.approx(report.driving_identity_distance)
    assert report.identity_distance > 0.01


def test_a_still_made_face_does_not_follow_a_moving_driver(shared, portrait, detector):
    clip = shared / "video" / "driving" / "d12.mp4"
    frames = list(itertools.islice(media.iter_video_frames(clip), 0, 60, 6))
    jittered = [np.roll(portrait, shift, axis=1) for shift in (0, 3, -2, 1, -3, 2, 0, -1, 3, -2)]
    report = realism.measure(jittered, frames, portrait, detector)
    assert report.motion_correlation is None or abs(report.motion_correlation) < 0.5


def test_frames_without_a_face_lower_the_faces_found_share(portrait, detector):
    blank = np.full_like(portrait, 90)
    report = realism.measure([portrait, blank, blank, portrait], [portrait] * 4, portrait, detector)
    assert report.faces_found == 0.5


def test_aligned_distance_ignores_translation_rotation_and_scale():
    points = np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 80.0], [65.0, 80.0]])
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = 1.7 * points @ rotation.T + [12.0, -5.0]
    assert realism.aligned_distance(moved, points) == pytest.approx(0.0, abs=1e-9)
    other = points.copy()
    other[2] += [0.0, 8.0]
    assert realism.aligned_distance(other, points) > 0.05
