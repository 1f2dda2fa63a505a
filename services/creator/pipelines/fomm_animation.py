"""Image animation with FOMM, as the published demo does it, over batches of driving frames.

Modes (the published ``normalize_kp`` switches):
  relative: keypoints move relative to the initial driving frame, jacobians relative too, and the
            movement is scaled by sqrt(source keypoint hull area / initial driving hull area);
  absolute: the driving keypoints are used as they are.
Every frame depends only on the source, the initial driving frame and itself, so frames can be
processed in any batch size with the same result.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

import numpy as np
import torch

from services.creator.checkpoints import FommModel

MODES = ("relative", "absolute")


def convex_hull_area(points: np.ndarray) -> float:
    """Area of the convex hull of (K, 2) points (0 for fewer than three non-collinear points)."""
    ordered = sorted(map(tuple, np.asarray(points, dtype=np.float64)))
    if len(ordered) < 3:
        return 0.0

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    def half(points_in_order):
        chain = []
        for p in points_in_order:
            while len(chain) >= 2 and cross(chain[-2], chain[-1], p) <= 0:
                chain.pop()
            chain.append(p)
        return chain[:-1]

    hull = half(ordered) + half(reversed(ordered))
    area = 0.0
    for (x1, y1), (x2, y2) in zip(hull, hull[1:] + hull[:1]):
        area += x1 * y2 - x2 * y1
    return abs(area) / 2.0


def movement_scale(kp_source_value: torch.Tensor, kp_initial_value: torch.Tensor) -> float:
    """sqrt(source hull area) / sqrt(initial driving hull area), from the first item of each batch."""
    source_area = convex_hull_area(kp_source_value[0].detach().cpu().numpy())
    driving_area = convex_hull_area(kp_initial_value[0].detach().cpu().numpy())
    if driving_area <= 0.0:
        return 1.0
    return float(np.sqrt(source_area) / np.sqrt(driving_area))


def normalize_kp(
    kp_source: dict,
    kp_driving: dict,
    kp_driving_initial: dict,
    adapt_movement_scale: float | bool = False,
    use_relative_movement: bool = False,
    use_relative_jacobian: bool = False,
) -> dict:
    """Driving keypoints as the generator should see them; ``adapt_movement_scale`` may be the
    precomputed scale, True to compute it, or False for 1."""
    if adapt_movement_scale is True:
        scale = movement_scale(kp_source["value"], kp_driving_initial["value"])
    elif adapt_movement_scale is False:
        scale = 1.0
    else:
        scale = float(adapt_movement_scale)
    kp_new = dict(kp_driving)
    if use_relative_movement:
        kp_new["value"] = (kp_driving["value"] - kp_driving_initial["value"]) * scale + kp_source["value"]
        # Models without jacobians have nothing to make relative (the published code fails there).
        if use_relative_jacobian and "jacobian" in kp_driving:
            jacobian_diff = torch.matmul(kp_driving["jacobian"], torch.inverse(kp_driving_initial["jacobian"]))
            kp_new["jacobian"] = torch.matmul(jacobian_diff, kp_source["jacobian"])
    return kp_new


def to_tensor(frames: np.ndarray, device) -> torch.Tensor:
    """(H,W,3) or (N,H,W,3) float in [0,1] -> (N,3,H,W) float32."""
    array = np.asarray(frames, dtype=np.float32)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"expected (H,W,3) or (N,H,W,3) frames, got {array.shape}")
    # A fresh C-ordered copy, laid out as the published demo's tensors are (NHWC memory viewed as
    # NCHW): convolution kernels pick their algorithm by memory layout, and a zero batch stride or
    # another layout changes the last bits of every output.
    return torch.from_numpy(array.copy(order="C")).permute(0, 3, 1, 2).to(device)


@dataclasses.dataclass
class AnimationState:
    """What stays fixed for a whole clip."""

    source: torch.Tensor
    kp_source: dict
    kp_initial: dict
    scale: float
    mode: str


@dataclasses.dataclass
class AnimatedBatch:
    prediction: np.ndarray  # (B,H,W,3) float32 in [0,1]
    deformed: np.ndarray  # (B,H,W,3)
    occlusion_map: np.ndarray | None  # (B,h,w)
    kp_driving_value: np.ndarray  # (B,K,2), raw from the keypoint detector
    kp_driving_jacobian: np.ndarray | None  # (B,K,2,2)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class FommAnimator:
    """A loaded FOMM model that animates one source by batches of driving frames."""

    def __init__(self, model: FommModel, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()

    @property
    def frame_size(self) -> int:
        return self.model.frame_size

    @torch.inference_mode()
    def keypoints(self, frames: torch.Tensor) -> dict:
        return self.model.kp_detector(frames)

    @torch.inference_mode()
    def prepare(self, source: np.ndarray, initial_driving: np.ndarray, mode: str = "relative") -> AnimationState:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        source_tensor = to_tensor(source, self.device)
        kp_source = self.keypoints(source_tensor)
        kp_initial = self.keypoints(to_tensor(initial_driving, self.device))
        scale = movement_scale(kp_source["value"], kp_initial["value"]) if mode == "relative" else 1.0
        return AnimationState(source_tensor, kp_source, kp_initial, scale, mode)

    @torch.inference_mode()
    def forward(self, state: AnimationState, driving: np.ndarray) -> tuple[dict, dict]:
        """The driving frames' raw keypoints and the generator's outputs, as tensors."""
        driving_tensor = to_tensor(driving, self.device)
        batch = driving_tensor.shape[0]
        kp_driving = self.keypoints(driving_tensor)
        relative = state.mode == "relative"
        kp_norm = normalize_kp(
            kp_source=state.kp_source,
            kp_driving=kp_driving,
            kp_driving_initial=state.kp_initial,
            adapt_movement_scale=state.scale if relative else False,
            use_relative_movement=relative,
            use_relative_jacobian=relative,
        )
        kp_source = {key: value.expand(batch, *value.shape[1:]) for key, value in state.kp_source.items()}
        kp_norm = {key: value.expand(batch, *value.shape[1:]) for key, value in kp_norm.items()}
        source = state.source.expand(batch, *state.source.shape[1:])
        return kp_driving, self.model.generator(source, kp_source=kp_source, kp_driving=kp_norm)

    def animate_batch(self, state: AnimationState, driving: np.ndarray) -> AnimatedBatch:
        kp_driving, out = self.forward(state, driving)
        return batch_outputs(kp_driving, out)


def batch_outputs(kp_driving: dict, out: dict, prediction: torch.Tensor | None = None,
                  deformed: torch.Tensor | None = None) -> AnimatedBatch:
    """The generator's outputs as arrays; ``prediction`` and ``deformed`` replace the generator's own."""
    occlusion = out.get("occlusion_map")
    jacobian = kp_driving.get("jacobian")
    prediction = out["prediction"] if prediction is None else prediction
    deformed = out["deformed"] if deformed is None else deformed
    return AnimatedBatch(
        prediction=_numpy(prediction.permute(0, 2, 3, 1)),
        deformed=_numpy(deformed.permute(0, 2, 3, 1)),
        occlusion_map=None if occlusion is None else _numpy(occlusion[:, 0]),
        kp_driving_value=_numpy(kp_driving["value"]),
        kp_driving_jacobian=None if jacobian is None else _numpy(jacobian),
    )


def batched(frames: Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    """Stack consecutive frames into (B,H,W,3) batches; the last may be shorter."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    pending = []
    for frame in frames:
        pending.append(frame)
        if len(pending) == batch_size:
            yield np.stack(pending)
            pending = []
    if pending:
        yield np.stack(pending)
