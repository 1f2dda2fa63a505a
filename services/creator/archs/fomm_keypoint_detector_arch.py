"""FOMM keypoint detector: an hourglass predicts one heatmap per keypoint, and optionally the
local affine transformation (jacobian) around each keypoint."""

import torch
import torch.nn.functional as F
from torch import nn

from services.creator.archs.fomm_blocks import AntiAliasInterpolation2d, Hourglass, make_coordinate_grid


class KPDetector(nn.Module):
    """Keypoints as the expected position under a softmax heatmap.

    Args:
        block_expansion: channels of the hourglass's first level.
        num_kp: number of keypoints K.
        num_channels: image channels.
        max_features: cap on hourglass channels.
        num_blocks: hourglass depth.
        temperature: softmax temperature of the heatmaps.
        estimate_jacobian: also predict a 2x2 jacobian per keypoint.
        scale_factor: the image is anti-alias downsampled by this factor first.
        single_jacobian_map: one jacobian map shared by all keypoints.
        pad: padding of the 7x7 heatmap and jacobian convolutions.

    Returns ``{'value': (N,K,2)}`` with (x, y) in [-1, 1], plus ``'jacobian': (N,K,2,2)``.
    """

    def __init__(
        self,
        block_expansion,
        num_kp,
        num_channels,
        max_features,
        num_blocks,
        temperature,
        estimate_jacobian=False,
        scale_factor=1,
        single_jacobian_map=False,
        pad=0,
    ):
        super().__init__()
        self.predictor = Hourglass(
            block_expansion, in_features=num_channels, max_features=max_features, num_blocks=num_blocks
        )
        self.kp = nn.Conv2d(self.predictor.out_filters, num_kp, kernel_size=(7, 7), padding=pad)
        if estimate_jacobian:
            self.num_jacobian_maps = 1 if single_jacobian_map else num_kp
            self.jacobian = nn.Conv2d(
                self.predictor.out_filters, 4 * self.num_jacobian_maps, kernel_size=(7, 7), padding=pad
            )
            # Starts as the identity transformation around every keypoint.
            with torch.no_grad():
                self.jacobian.weight.zero_()
                self.jacobian.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 1.0] * self.num_jacobian_maps))
        else:
            self.jacobian = None
        self.temperature = temperature
        self.scale_factor = scale_factor
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    @staticmethod
    def gaussian2kp(heatmap):
        """Expected (x, y) under each (N,K,H,W) heatmap."""
        grid = make_coordinate_grid(heatmap.shape[2:], heatmap.dtype, heatmap.device)
        return {"value": (heatmap.unsqueeze(-1) * grid[None, None]).sum(dim=(2, 3))}

    def forward(self, x):
        if self.scale_factor != 1:
            x = self.down(x)
        feature_map = self.predictor(x)
        prediction = self.kp(feature_map)
        n, k, h, w = prediction.shape
        heatmap = F.softmax(prediction.view(n, k, -1) / self.temperature, dim=2).view(n, k, h, w)
        out = self.gaussian2kp(heatmap)
        if self.jacobian is not None:
            jacobian_map = self.jacobian(feature_map).reshape(n, self.num_jacobian_maps, 4, h, w)
            jacobian = (heatmap.unsqueeze(2) * jacobian_map).view(n, k, 4, -1).sum(dim=-1)
            out["jacobian"] = jacobian.view(n, k, 2, 2)
        return out
