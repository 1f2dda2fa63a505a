"""Full-resolution animation: FOMM's motion at the model's frame size, the pixels from the source.

FOMM predicts, for every driving frame, a dense backward flow (where each pixel comes from in the
source) and an occlusion map (how far the source can be seen there), at the model's small frame
size. Its generator then redraws the whole frame at that size, so a 64x64 model gives a 64x64 face.
Here the flow is upsampled to the source crop's own resolution (up to ``max_side``) and the source
crop is warped by it, which keeps the source's texture; the generator's output, upscaled and
restored, is used only where the source cannot be seen: where the occlusion map is low (the mouth
opening, background the head uncovers) or where the flow points outside the crop.

FOMM's occlusion map is a soft feature attenuator, trained to dim features rather than to decide
visibility: on visible skin it reads 0.75-1.0. ``visible_from`` and ``visible_at`` map it onto a
pixel blend weight: at or below ``visible_from`` the generator's pixels are used, at or above
``visible_at`` the warped source's, linearly in between.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from services.creator.pipelines.fomm_animation import (
    AnimatedBatch,
    AnimationState,
    FommAnimator,
    batch_outputs,
    to_tensor,
)

# Faces larger than this are warped at this size and scaled up when pasted: the source crops of
# portraits and talking heads are 150-500 px, and the face restorer is trained at that scale.
MAX_SIDE = 512
# The face restorer's convolutions need sides that are multiples of 8.
SIDE_MULTIPLE = 8

Restore = Callable[[np.ndarray], np.ndarray]
"""(B,S,S,3) uint8 bicubic-upscaled faces -> restored faces of the same shape."""


def working_side(side: int, max_side: int = MAX_SIDE) -> int:
    """The side a source crop of ``side`` pixels is animated at: itself, capped, rounded down to 8."""
    return max(SIDE_MULTIPLE, min(side, max_side) // SIDE_MULTIPLE * SIDE_MULTIPLE)


def resize_frames(frames: np.ndarray, side: int) -> np.ndarray:
    """(B,H,W,3) float in [0,1] -> (B,side,side,3), through uint8 and PIL's bicubic filter (as the
    plain path's framing resizes), so a source reduced here equals one reduced by ``fit_frame``."""
    out = []
    for frame in frames:
        rgb = (np.clip(frame, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if rgb.shape[:2] != (side, side):
            rgb = np.asarray(Image.fromarray(rgb).resize((side, side), Image.BICUBIC))
        out.append(rgb.astype(np.float32) / 255.0)
    return np.stack(out)


def visibility(occlusion_map: torch.Tensor, deformation: torch.Tensor, visible_from: float,
               visible_at: float) -> torch.Tensor:
    """Blend weight of the warped source, (B,1,S,S) in [0,1], at the deformation's resolution.

    ``occlusion_map`` (B,1,h,w) is resized to the deformation (B,S,S,2); a pixel whose flow points
    outside the source crop has nothing to sample and gets weight 0."""
    size = deformation.shape[1:3]
    occlusion = F.interpolate(occlusion_map, size=size, mode="bilinear", align_corners=False)
    weight = ((occlusion - visible_from) / max(visible_at - visible_from, 1e-6)).clamp(0.0, 1.0)
    inside = (deformation.abs().amax(dim=-1) <= 1.0).to(weight.dtype).unsqueeze(1)
    return weight * inside


def upsample_deformation(deformation: torch.Tensor, side: int) -> torch.Tensor:
    """(B,h,w,2) flow in [-1,1] coordinates -> (B,side,side,2); the coordinates are resolution-free.

    Bilinear with the corners on the end pixels' centres, as the flow's own grid is laid out: it
    reproduces a smooth (affine) flow exactly, where torch's bicubic kernel (a = -0.75) bends a
    linear ramp by up to a pixel."""
    if deformation.shape[1:3] == (side, side):
        return deformation
    grid = F.interpolate(deformation.permute(0, 3, 1, 2), size=(side, side), mode="bilinear", align_corners=True)
    return grid.permute(0, 2, 3, 1)


@dataclasses.dataclass
class FullResolutionState:
    """What stays fixed for a clip: the model's state and the source crop at working resolution."""

    model_state: AnimationState
    source: torch.Tensor  # (1,3,S,S)

    @property
    def kp_source(self) -> dict:
        return self.model_state.kp_source


class FullResolutionAnimator:
    """Animates a source crop at its own resolution with a FOMM model's motion.

    ``prepare`` takes the source at any square size (the working side, see ``working_side``) and
    the initial driving frame at the model's frame size; ``animate_batch`` takes driving frames at
    the model's frame size and returns predictions at the source's size. ``restore`` improves the
    upscaled generator output used in occluded regions (None: bicubic upscaling alone)."""

    def __init__(self, animator: FommAnimator, restore: Restore | None = None, visible_from: float = 0.55,
                 visible_at: float = 0.8):
        if not 0.0 <= visible_from < visible_at <= 1.0:
            raise ValueError("need 0 <= visible_from < visible_at <= 1")
        self.animator = animator
        self.restore = restore
        self.visible_from = visible_from
        self.visible_at = visible_at

    @property
    def frame_size(self) -> int:
        return self.animator.frame_size

    @property
    def device(self) -> torch.device:
        return self.animator.device

    def prepare(self, source: np.ndarray, initial_driving: np.ndarray, mode: str = "relative") -> FullResolutionState:
        side = source.shape[0]
        if source.ndim != 3 or source.shape[1] != side:
            raise ValueError(f"the source must be a square (S,S,3) crop, got {source.shape}")
        small = resize_frames(source[None], self.frame_size)[0]
        model_state = self.animator.prepare(small, initial_driving, mode)
        return FullResolutionState(model_state, to_tensor(source, self.device))

    def _generated_at(self, prediction: torch.Tensor, side: int) -> torch.Tensor:
        """The generator's frames upscaled to ``side`` and restored: (B,3,S,S) in [0,1]."""
        frames = prediction.permute(0, 2, 3, 1).float().cpu().numpy()
        upscaled = resize_frames(frames, side)
        if self.restore is not None:
            upscaled = self.restore((upscaled * 255.0 + 0.5).astype(np.uint8)).astype(np.float32) / 255.0
        return to_tensor(upscaled, self.device)

    @torch.inference_mode()
    def animate_batch(self, state: FullResolutionState, driving: np.ndarray) -> AnimatedBatch:
        kp_driving, out = self.animator.forward(state.model_state, driving)
        side = state.source.shape[-1]
        deformation = upsample_deformation(out["deformation"], side)
        source = state.source.expand(len(driving), *state.source.shape[1:])
        warped = F.grid_sample(source, deformation, mode="bicubic", padding_mode="border",
                               align_corners=True).clamp(0.0, 1.0)
        occlusion = out.get("occlusion_map")
        if occlusion is None:
            occlusion = torch.ones_like(deformation[..., :1]).permute(0, 3, 1, 2)
        weight = visibility(occlusion, deformation, self.visible_from, self.visible_at)
        frames = warped
        if bool((weight < 1.0).any()):
            frames = warped * weight + self._generated_at(out["prediction"], side) * (1.0 - weight)
        return batch_outputs(kp_driving, out, prediction=frames, deformed=warped)
