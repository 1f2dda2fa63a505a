"""Face restoration networks behind one interface: aligned faces in, restored faces out.

Two kinds:
- the platform's FaceRestoreUNet (`dfp enhancer train-face`), committed under models/enhancer/;
- BasicSR's DFDNet with the published checkpoint and component dictionary, when a user has them.

DFDNet as BasicSR builds it loads VGG19 weights in its constructor, from a relative path or else
by downloading them. Here nothing is downloaded: with a VGG19 file given, BasicSR reads that
file; without one, the VGG19 skeleton is built without weights, because the published DFDNet
checkpoint carries every VGG weight it uses and is loaded strictly over it (a checkpoint without
them is refused). DFDNet wants the eyes, nose and mouth as boxes on its 512x512 aligned face; they
are derived here from the five landmarks the platform's detector gives (DFDNet's authors used 68).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import types

import numpy as np
import torch
from torch import nn

from services.enhancer import weights
from services.enhancer.archs.face_restore_arch import FaceRestoreUNet

REPO = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_FACE_MODEL = REPO / "models" / "enhancer" / "face-restore" / "face_restore.pth"
DFDNET_SIZE = 512


class FaceRestorer:
    """Restores a batch of aligned faces (NxSxSx3 uint8, `size` square) given their five landmarks
    in crop pixels (Nx5x2: eyes, nose, mouth corners)."""

    size: int
    name: str

    def restore(self, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _to_tensor(faces: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(faces.astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(device)


def _to_uint8(batch: torch.Tensor) -> np.ndarray:
    return (batch.float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


@dataclasses.dataclass
class UNetRestorer(FaceRestorer):
    model: FaceRestoreUNet
    size: int = 256
    name: str = "face-restore-unet"
    batch_size: int = 8

    @torch.inference_mode()
    def restore(self, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device
        out = [_to_uint8(self.model(_to_tensor(faces[i:i + self.batch_size], device)))
               for i in range(0, len(faces), self.batch_size)]
        return np.concatenate(out)


def load_unet(path: pathlib.Path | None = None, device: str = "cpu", num_feat: int = 48, num_block: int = 2) -> UNetRestorer:
    path = pathlib.Path(path or DEFAULT_FACE_MODEL)
    if not path.exists():
        raise FileNotFoundError(f"the face restoration weights are missing ({path}); restore them from git, "
                                "or train them with `dfp enhancer train-face`")
    model = FaceRestoreUNet(num_feat=num_feat, num_block=num_block)
    try:
        model.load_state_dict(weights.read_state_dict(path), strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(f"{path} does not fit FaceRestoreUNet: {exc}") from exc
    return UNetRestorer(model.eval().to(device))


@contextlib.contextmanager
def _vgg19_source(vgg19: pathlib.Path | None):
    from services.enhancer.basicsr_archs import vgg_arch

    saved_path, saved_module = vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg
    try:
        if vgg19 is not None:
            vgg_arch.VGG_PRETRAIN_PATH = str(pathlib.Path(vgg19).resolve())
        else:
            from torchvision.models import vgg19 as build_vgg19

            vgg_arch.VGG_PRETRAIN_PATH = "/nonexistent/vgg19.pth"
            vgg_arch.vgg = types.SimpleNamespace(vgg19=lambda pretrained=True: build_vgg19(weights=None))
        yield
    finally:
        vgg_arch.VGG_PRETRAIN_PATH, vgg_arch.vgg = saved_path, saved_module


def build_dfdnet(dictionary: pathlib.Path, vgg19: pathlib.Path | None = None, num_feat: int = 64) -> nn.Module:
    """BasicSR's DFDNet with its component dictionary, VGG19 from `vgg19` or unweighted (see above)."""
    from services.enhancer.basicsr_archs import DFDNet

    with _vgg19_source(vgg19):
        return DFDNet(num_feat, str(pathlib.Path(dictionary).resolve()))


def part_boxes(landmarks: np.ndarray, size: int = DFDNET_SIZE) -> list[np.ndarray]:
    """[left eye, right eye, nose, mouth] boxes (x0, y0, x1, y1) in a `size` face from five landmarks."""
    left_eye, right_eye, nose, mouth_left, mouth_right = landmarks.astype(np.float64)
    eye_distance = np.linalg.norm(right_eye - left_eye)

    def box(center, half_width, half_height):
        x0, y0 = np.clip(center - (half_width, half_height), 0, size - 1)
        x1, y1 = np.clip(center + (half_width, half_height), 1, size)
        return np.array([x0, y0, x1, y1])

    mouth = (mouth_left + mouth_right) / 2
    mouth_half = max(np.linalg.norm(mouth_right - mouth_left) * 0.75, eye_distance * 0.35)
    return [box(left_eye, eye_distance * 0.4, eye_distance * 0.3), box(right_eye, eye_distance * 0.4, eye_distance * 0.3),
            box(nose, eye_distance * 0.35, eye_distance * 0.4), box(mouth, mouth_half, eye_distance * 0.35)]


@dataclasses.dataclass
class DFDNetRestorer(FaceRestorer):
    model: nn.Module
    size: int = DFDNET_SIZE
    name: str = "dfdnet"

    @torch.inference_mode()
    def restore(self, faces: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device
        out = []
        # BasicSR's DFDNet takes one face at a time, in [-1, 1] and answers in [-1, 1].
        for face, points in zip(faces, landmarks):
            locations = [torch.from_numpy(b)[None].float() for b in part_boxes(points, self.size)]
            restored = self.model(_to_tensor(face[None], device) * 2 - 1, locations)
            out.append(_to_uint8((restored + 1) / 2)[0])
        return np.stack(out)


def load_dfdnet(checkpoint: pathlib.Path, dictionary: pathlib.Path, vgg19: pathlib.Path | None = None,
                device: str = "cpu") -> DFDNetRestorer:
    """The published DFDNet (`params_ema`/`params` or a bare state dict) with its dictionary file."""
    model = build_dfdnet(dictionary, vgg19)
    state = weights.read_state_dict(checkpoint)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise weights.WeightsError(f"{checkpoint} is not a DFDNet checkpoint for BasicSR's DFDNet: {exc}") from exc
    return DFDNetRestorer(model.eval().to(device))
