"""FaceRestoreUNet: the platform's own blind face restoration network.

A U-Net with residual blocks at three scales and skip connections, predicting a residual on top of
its input: it takes a degraded face already at the output size (blurred, noisy, compressed, or
upsampled from low resolution) and returns the restored face. The input is first folded 2x2 into
channels (pixel-unshuffle), so every convolution runs at half resolution or less without discarding
a pixel; that keeps it cheap enough to train on a CPU. Fully convolutional: any face whose sides are
multiples of 8 goes through; it is trained on face crops at the platform's face scale.
"""

import torch
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    def __init__(self, num_feat: int):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.leaky_relu(self.conv1(x), 0.2))


class FaceRestoreUNet(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 48, num_block: int = 2):
        super().__init__()
        widths = [num_feat, num_feat * 2, num_feat * 2]
        self.conv_first = nn.Conv2d(num_in_ch * 4, widths[0], 3, 1, 1)
        self.down = nn.ModuleList(nn.Conv2d(widths[i], widths[i + 1], 4, 2, 1) for i in range(2))
        self.encoder = nn.ModuleList(nn.Sequential(*(ResidualBlock(w) for _ in range(num_block))) for w in widths)
        self.up = nn.ModuleList(nn.Conv2d(widths[i + 1], widths[i], 3, 1, 1) for i in range(2))
        self.fuse = nn.ModuleList(nn.Conv2d(widths[i] * 2, widths[i], 1) for i in range(2))
        self.decoder = nn.ModuleList(nn.Sequential(*(ResidualBlock(widths[i]) for _ in range(num_block))) for i in range(2))
        self.conv_last = nn.Conv2d(widths[0], num_out_ch * 4, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.encoder[0](F.leaky_relu(self.conv_first(F.pixel_unshuffle(x, 2)), 0.2))
        skips = [feat]
        for level in range(2):
            feat = self.encoder[level + 1](F.leaky_relu(self.down[level](feat), 0.2))
            skips.append(feat)
        for level in reversed(range(2)):
            feat = F.interpolate(feat, scale_factor=2, mode="bilinear", align_corners=False)
            feat = F.leaky_relu(self.up[level](feat), 0.2)
            feat = self.decoder[level](self.fuse[level](torch.cat([feat, skips[level]], 1)))
        return x + F.pixel_shuffle(self.conv_last(feat), 2)
