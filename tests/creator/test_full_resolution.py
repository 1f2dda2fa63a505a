"""Full-resolution animation: the source's pixels moved by the model's motion, the generator's
pixels only where the occlusion map says the source cannot be seen."""

import numpy as np
import pytest
import torch

from services.creator import checkpoints
from services.creator.archs.fomm_blocks import make_coordinate_grid
from services.creator.pipelines.fomm_animation import AnimationState, FommAnimator, to_tensor
from services.creator.pipelines.full_resolution import FullResolutionAnimator, resize_frames, working_side
from services.creator.realism import laplacian_variance
from tests.creator.test_fomm_archs import HERE

MOTION_SIZE = 16
FRAME_SIZE = 32
SIDE = 160
SHIFT = 8  # pixels at full resolution


class KnownMotion:
    """A model whose motion is given: a horizontal shift of SHIFT full-resolution pixels, an
    occlusion map that is 1 except where ``occluded`` says, and a plain red generator output."""

    frame_size = FRAME_SIZE
    device = torch.device("cpu")

    def __init__(self, occluded: np.ndarray | None = None):
        self.occlusion = np.ones((MOTION_SIZE, MOTION_SIZE), np.float32)
        if occluded is not None:
            self.occlusion[occluded] = 0.0
        self.prepared_source_shape = None

    def prepare(self, source, initial_driving, mode="relative"):
        self.prepared_source_shape = source.shape
        return AnimationState(to_tensor(source, self.device), {}, {}, 1.0, mode)

    def forward(self, state, driving):
        batch = len(driving)
        grid = make_coordinate_grid((MOTION_SIZE, MOTION_SIZE)).clone()
        grid[..., 0] += 2.0 * SHIFT / (SIDE - 1)
        red = torch.zeros(batch, 3, FRAME_SIZE, FRAME_SIZE)
        red[:, 0] = 1.0
        kp = {"value": torch.zeros(batch, 1, 2)}
        return kp, {
            "deformation": grid.expand(batch, -1, -1, -1),
            "occlusion_map": torch.from_numpy(self.occlusion).expand(batch, 1, -1, -1),
            "prediction": red,
            "deformed": red,
        }


def textured_still(side: int = SIDE) -> np.ndarray:
    """Fine texture (one-pixel checks and noise) that any resampling to a lower resolution would wash out."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side]
    checks = ((xx + yy) % 2).astype(np.float32)
    still = np.stack([checks, rng.random((side, side)), 1.0 - checks], axis=-1).astype(np.float32)
    return np.round(still * 255.0) / 255.0


def test_a_still_warped_by_a_known_flow_keeps_its_texture_at_full_resolution():
    still = textured_still()
    animator = FullResolutionAnimator(KnownMotion())
    state = animator.prepare(still, np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.float32))
    frame = animator.animate_batch(state, np.zeros((2, FRAME_SIZE, FRAME_SIZE, 3), np.float32)).prediction
    assert frame.shape == (2, SIDE, SIDE, 3)
    # Each output pixel comes from SHIFT pixels to its right in the source, texture and all.
    inner = slice(4, SIDE - SHIFT - 4)
    np.testing.assert_allclose(frame[0][inner, inner], still[inner, SHIFT + 4 : SIDE - 4], atol=2e-3)
    as_uint8 = (frame[0] * 255 + 0.5).astype(np.uint8)
    source_sharpness = laplacian_variance((still * 255 + 0.5).astype(np.uint8))
    assert laplacian_variance(as_uint8) > 0.95 * source_sharpness
    # The model itself saw the source at its frame size only.
    assert animator.animator.prepared_source_shape == (FRAME_SIZE, FRAME_SIZE, 3)


def test_an_occluded_region_is_filled_from_the_generator():
    occluded = np.zeros((MOTION_SIZE, MOTION_SIZE), bool)
    occluded[4:12, 4:12] = True
    restored_sizes = []

    def restore(faces):
        restored_sizes.append(faces.shape)
        return faces

    animator = FullResolutionAnimator(KnownMotion(occluded), restore=restore)
    still = textured_still()
    state = animator.prepare(still, np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.float32))
    frame = animator.animate_batch(state, np.zeros((1, FRAME_SIZE, FRAME_SIZE, 3), np.float32)).prediction[0]
    middle = frame[SIDE // 2 - 20 : SIDE // 2 + 20, SIDE // 2 - 20 : SIDE // 2 + 20]
    np.testing.assert_allclose(middle, np.broadcast_to([1.0, 0.0, 0.0], middle.shape), atol=1e-3)
    corner = frame[4:20, 4:20]
    np.testing.assert_allclose(corner, still[4:20, 4 + SHIFT : 20 + SHIFT], atol=2e-3)
    # The generator's pixels were upscaled to the source's size before the restorer saw them.
    assert restored_sizes == [(1, SIDE, SIDE, 3)]


def test_flow_that_points_outside_the_source_takes_the_generator_pixels():
    animator = FullResolutionAnimator(KnownMotion())
    state = animator.prepare(textured_still(), np.zeros((FRAME_SIZE, FRAME_SIZE, 3), np.float32))
    frame = animator.animate_batch(state, np.zeros((1, FRAME_SIZE, FRAME_SIZE, 3), np.float32)).prediction[0]
    # The last SHIFT columns would sample beyond the source's right edge: nothing there to move.
    np.testing.assert_allclose(frame[:, -2:], np.broadcast_to([1.0, 0.0, 0.0], frame[:, -2:].shape), atol=1e-3)


def test_a_real_fomm_with_identity_motion_returns_the_source_at_its_own_resolution():
    model = checkpoints.build_networks(checkpoints.load_config(HERE / "tiny_fomm.yaml")).eval()
    base = FommAnimator(model)
    animator = FullResolutionAnimator(base, visible_from=0.0, visible_at=1e-3)
    still = textured_still(96)
    state = animator.prepare(still, resize_frames(still[None], base.frame_size)[0], "relative")
    # Driving = the initial frame: relative motion is the identity, so every pixel stays in place.
    batch = animator.animate_batch(state, resize_frames(still[None], base.frame_size))
    assert batch.prediction.shape == (1, 96, 96, 3)
    np.testing.assert_allclose(batch.deformed[0][2:-2, 2:-2], still[2:-2, 2:-2], atol=2e-3)


@pytest.mark.parametrize("side,expected", [(219, 216), (700, 512), (40, 40), (5, 8)])
def test_working_side_is_the_crop_size_capped_and_a_multiple_of_eight(side, expected):
    assert working_side(side) == expected
