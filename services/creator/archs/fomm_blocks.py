"""Building blocks shared by the First Order Motion Model networks.

Attribute names (``conv``, ``norm``, ``down_blocks``, ``up_blocks``, ``weight`` of the anti-alias
filter) are the published checkpoint format and must not change.

The published weights were trained with torch 1.0, whose ``grid_sample`` sampled with
``align_corners=True``; every warp here goes through ``warp`` so that behaviour holds everywhere.
"""

import torch
import torch.nn.functional as F
from torch import nn


def warp(image, grid):
    """Sample ``image`` (N,C,H,W) at ``grid`` (N,h,w,2) of (x, y) in [-1, 1], corners on pixel centres."""
    return F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def make_coordinate_grid(spatial_size, dtype=torch.float32, device=None):
    """An (H, W, 2) grid of (x, y) running from -1 to 1 inclusive, pixel centres on the ends."""
    height, width = spatial_size
    x = torch.arange(width, dtype=dtype, device=device)
    y = torch.arange(height, dtype=dtype, device=device)
    x = 2 * (x / (width - 1)) - 1
    y = 2 * (y / (height - 1)) - 1
    xx = x.view(1, -1).repeat(height, 1)
    yy = y.view(-1, 1).repeat(1, width)
    return torch.stack([xx, yy], dim=2)


def kp2gaussian(kp_value, spatial_size, kp_variance):
    """Gaussian blobs centred on keypoints (..., K, 2) -> (..., K, H, W)."""
    grid = make_coordinate_grid(spatial_size, kp_value.dtype, kp_value.device)
    leading = kp_value.shape[:-1]
    grid = grid.view((1,) * len(leading) + grid.shape)
    mean = kp_value.view(leading + (1, 1, 2))
    return torch.exp(-0.5 * ((grid - mean) ** 2).sum(-1) / kp_variance)


class ResBlock2d(nn.Module):
    """Pre-activation residual block that keeps the resolution."""

    def __init__(self, in_features, kernel_size, padding):
        super().__init__()
        self.conv1 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.conv2 = nn.Conv2d(in_features, in_features, kernel_size=kernel_size, padding=padding)
        self.norm1 = nn.BatchNorm2d(in_features, affine=True)
        self.norm2 = nn.BatchNorm2d(in_features, affine=True)

    def forward(self, x):
        out = self.conv1(F.relu(self.norm1(x)))
        out = self.conv2(F.relu(self.norm2(out)))
        return out + x


class UpBlock2d(nn.Module):
    """Nearest x2 upsampling, then conv, norm, relu."""

    def __init__(self, in_features, out_features, kernel_size=3, padding=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x):
        out = F.interpolate(x, scale_factor=2)
        return F.relu(self.norm(self.conv(out)))


class DownBlock2d(nn.Module):
    """Conv, norm, relu, then 2x2 average pooling."""

    def __init__(self, in_features, out_features, kernel_size=3, padding=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)
        self.pool = nn.AvgPool2d(kernel_size=(2, 2))

    def forward(self, x):
        return self.pool(F.relu(self.norm(self.conv(x))))


class SameBlock2d(nn.Module):
    """Conv, norm, relu at the same resolution."""

    def __init__(self, in_features, out_features, groups=1, kernel_size=3, padding=1):
        super().__init__()
        self.conv = nn.Conv2d(in_features, out_features, kernel_size=kernel_size, padding=padding, groups=groups)
        self.norm = nn.BatchNorm2d(out_features, affine=True)

    def forward(self, x):
        return F.relu(self.norm(self.conv(x)))


def _hourglass_width(block_expansion, max_features, level):
    return min(max_features, block_expansion * (2 ** level))


class Encoder(nn.Module):
    """Hourglass encoder: returns the input and every level's output, for the skips."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        self.down_blocks = nn.ModuleList(
            DownBlock2d(
                in_features if i == 0 else _hourglass_width(block_expansion, max_features, i),
                _hourglass_width(block_expansion, max_features, i + 1),
                kernel_size=3,
                padding=1,
            )
            for i in range(num_blocks)
        )

    def forward(self, x):
        outs = [x]
        for block in self.down_blocks:
            outs.append(block(outs[-1]))
        return outs


class Decoder(nn.Module):
    """Hourglass decoder: upsamples and concatenates the encoder's skips, the input last."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        blocks = []
        for i in reversed(range(num_blocks)):
            skip_factor = 1 if i == num_blocks - 1 else 2
            blocks.append(
                UpBlock2d(
                    skip_factor * _hourglass_width(block_expansion, max_features, i + 1),
                    _hourglass_width(block_expansion, max_features, i),
                    kernel_size=3,
                    padding=1,
                )
            )
        self.up_blocks = nn.ModuleList(blocks)
        self.out_filters = block_expansion + in_features

    def forward(self, encoder_outputs):
        skips = list(encoder_outputs)
        out = skips.pop()
        for block in self.up_blocks:
            out = torch.cat([block(out), skips.pop()], dim=1)
        return out


class Hourglass(nn.Module):
    """U-Net style encoder-decoder; ``out_filters`` channels come out at the input resolution."""

    def __init__(self, block_expansion, in_features, num_blocks=3, max_features=256):
        super().__init__()
        self.encoder = Encoder(block_expansion, in_features, num_blocks, max_features)
        self.decoder = Decoder(block_expansion, in_features, num_blocks, max_features)
        self.out_filters = self.decoder.out_filters

    def forward(self, x):
        return self.decoder(self.encoder(x))


class AntiAliasInterpolation2d(nn.Module):
    """Gaussian blur then nearest downsampling by ``scale``; the kernel is the ``weight`` buffer."""

    def __init__(self, channels, scale):
        super().__init__()
        sigma = (1 / scale - 1) / 2
        kernel_size = 2 * round(sigma * 4) + 1
        self.ka = kernel_size // 2
        self.kb = self.ka - 1 if kernel_size % 2 == 0 else self.ka
        centre = (kernel_size - 1) / 2
        taps = torch.arange(kernel_size, dtype=torch.float32)
        gaussian = torch.exp(-((taps - centre) ** 2) / (2 * sigma**2))
        kernel = gaussian.view(-1, 1) * gaussian.view(1, -1)
        kernel = kernel / kernel.sum()
        self.register_buffer("weight", kernel.view(1, 1, kernel_size, kernel_size).repeat(channels, 1, 1, 1))
        self.groups = channels
        self.scale = scale

    def forward(self, x):
        if self.scale == 1.0:
            return x
        out = F.pad(x, (self.ka, self.kb, self.ka, self.kb))
        out = F.conv2d(out, weight=self.weight, groups=self.groups)
        return F.interpolate(out, scale_factor=(self.scale, self.scale))
