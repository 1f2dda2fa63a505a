"""Real-ESRGAN's compact super-resolution net, SRVGGNetCompact, as BasicSR defines it.

A plain stack of 3x3 convolutions at low resolution, a pixel shuffle, and the nearest-neighbour
upsampled input added back, so the convolutions learn only the residual. The layers live in one
`body` list (conv, activation, conv, activation, ..., conv) as in the published `.pth` files.
"""

import torch
from torch import nn
from torch.nn import functional as F


class SRVGGNetCompact(nn.Module):
    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu"):
        super().__init__()
        self.upscale = upscale
        self.body = nn.ModuleList([nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), _activation(act_type, num_feat)])
        for _ in range(num_conv):
            self.body.append(nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            self.body.append(_activation(act_type, num_feat))
        self.body.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        return self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")


def _activation(act_type: str, num_feat: int) -> nn.Module:
    if act_type == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if act_type == "lrelu":
        return nn.LeakyReLU(negative_slope=0.1, inplace=True)
    if act_type == "relu":
        return nn.ReLU(inplace=True)
    raise ValueError(f"unknown activation {act_type!r}: use prelu, lrelu or relu")
