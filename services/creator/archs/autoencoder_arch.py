"""DeepFaceLab-style face swap autoencoder: one shared encoder, one decoder per identity.

A face of identity A encoded by the shared encoder and decoded by B's decoder comes out with B's
identity and A's pose, expression and lighting. Each decoder also predicts the face mask used to
blend the swap into the frame. Two layouts, as DeepFaceLab's SAEHD offers:

  df:   encoder -> shared inter -> a decoder per identity;
  liae: encoder -> inter_ab (every identity) and inter_b (the target identity only); a face is
        decoded from [inter_ab, inter_ab] for the source look and [inter_b, inter_ab] for the
        target's, by one shared decoder.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Downscale(nn.Module):
    """5x5 stride-2 conv and leaky ReLU."""

    def __init__(self, in_channels, out_channels, kernel_size=5):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=2, padding=kernel_size // 2)

    def forward(self, x):
        return F.leaky_relu(self.conv(x), 0.1)


class Upscale(nn.Module):
    """3x3 conv to four times the channels, then pixel shuffle x2."""

    def __init__(self, in_channels, out_channels, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels * 4, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        return F.pixel_shuffle(F.leaky_relu(self.conv(x), 0.1), 2)


class ResidualBlock(nn.Module):
    def __init__(self, channels, kernel_size=3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)
        self.conv2 = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        out = F.leaky_relu(self.conv1(x), 0.2)
        return F.leaky_relu(x + self.conv2(out), 0.2)


class Encoder(nn.Module):
    """Four downscales: resolution/16 at e_dims*8 channels, flattened."""

    def __init__(self, in_channels, e_dims):
        super().__init__()
        widths = [in_channels, e_dims, e_dims * 2, e_dims * 4, e_dims * 8]
        self.down = nn.Sequential(*(Downscale(a, b) for a, b in zip(widths, widths[1:])))

    def forward(self, x):
        return torch.flatten(self.down(x), 1)


class Inter(nn.Module):
    """Bottleneck: dense to ae_dims, dense back to a lowest_res^2 map, one upscale."""

    def __init__(self, in_features, ae_dims, ae_out_dims, lowest_res):
        super().__init__()
        self.lowest_res = lowest_res
        self.ae_out_dims = ae_out_dims
        self.dense1 = nn.Linear(in_features, ae_dims)
        self.dense2 = nn.Linear(ae_dims, lowest_res * lowest_res * ae_out_dims)
        self.upscale = Upscale(ae_out_dims, ae_out_dims)

    def forward(self, x):
        x = self.dense2(self.dense1(x))
        return self.upscale(x.view(-1, self.ae_out_dims, self.lowest_res, self.lowest_res))


class Decoder(nn.Module):
    """Three upscales with residual blocks to the image, and a lighter branch to the mask."""

    def __init__(self, in_channels, d_dims, d_mask_dims):
        super().__init__()
        self.upscale0 = Upscale(in_channels, d_dims * 8)
        self.upscale1 = Upscale(d_dims * 8, d_dims * 4)
        self.upscale2 = Upscale(d_dims * 4, d_dims * 2)
        self.res0 = ResidualBlock(d_dims * 8)
        self.res1 = ResidualBlock(d_dims * 4)
        self.res2 = ResidualBlock(d_dims * 2)
        self.out_conv = nn.Conv2d(d_dims * 2, 3, 1)
        self.upscalem0 = Upscale(in_channels, d_mask_dims * 8)
        self.upscalem1 = Upscale(d_mask_dims * 8, d_mask_dims * 4)
        self.upscalem2 = Upscale(d_mask_dims * 4, d_mask_dims * 2)
        self.out_convm = nn.Conv2d(d_mask_dims * 2, 1, 1)

    def forward(self, z):
        x = self.res0(self.upscale0(z))
        x = self.res1(self.upscale1(x))
        x = self.res2(self.upscale2(x))
        m = self.upscalem2(self.upscalem1(self.upscalem0(z)))
        return torch.sigmoid(self.out_conv(x)), torch.sigmoid(self.out_convm(m))


class FaceSwapAutoencoder(nn.Module):
    """Aligned faces (N,3,R,R) in [0,1] -> (image, mask) as decoded for an identity.

    Args:
        resolution: side of the aligned faces, a multiple of 16 (64 to 256).
        identities: names of the identities, one decoder each (df) or the target last (liae).
        archi: "df" or "liae".
        e_dims: encoder width; ae_dims: bottleneck size; d_dims, d_mask_dims: decoder widths.
    """

    def __init__(self, resolution=64, identities=("a", "b"), archi="df", e_dims=64, ae_dims=128, d_dims=64,
                 d_mask_dims=16):
        super().__init__()
        if resolution % 16 or not 32 <= resolution <= 512:
            raise ValueError(f"resolution must be a multiple of 16 in [32, 512], got {resolution}")
        if archi not in ("df", "liae"):
            raise ValueError(f"archi must be 'df' or 'liae', got {archi!r}")
        if len(identities) != 2 or identities[0] == identities[1]:
            raise ValueError("need two distinct identities")
        self.resolution = resolution
        self.identities = tuple(identities)
        self.archi = archi
        lowest_res = resolution // 16
        encoded = e_dims * 8 * lowest_res * lowest_res
        self.encoder = Encoder(3, e_dims)
        if archi == "df":
            self.inter = Inter(encoded, ae_dims, ae_dims, lowest_res)
            self.decoders = nn.ModuleDict({name: Decoder(ae_dims, d_dims, d_mask_dims) for name in identities})
        else:
            self.inter_ab = Inter(encoded, ae_dims, ae_dims * 2, lowest_res)
            self.inter_b = Inter(encoded, ae_dims, ae_dims * 2, lowest_res)
            self.decoder = Decoder(ae_dims * 4, d_dims, d_mask_dims)

    def forward(self, faces, identity):
        if identity not in self.identities:
            raise ValueError(f"unknown identity {identity!r}; the model knows {self.identities}")
        code = self.encoder(faces)
        if self.archi == "df":
            return self.decoders[identity](self.inter(code))
        shared = self.inter_ab(code)
        target_look = self.inter_b(code) if identity == self.identities[1] else shared
        return self.decoder(torch.cat([target_look, shared], dim=1))
