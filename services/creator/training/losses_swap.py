"""Face swap training: random warps of the input faces, DSSIM + L1 on the face, and the mask loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from services.creator.archs.fomm_blocks import make_coordinate_grid


def gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    taps = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    gauss = torch.exp(-(taps**2) / (2 * sigma**2))
    gauss = gauss / gauss.sum()
    return (gauss[:, None] * gauss[None, :])[None, None]


def ssim(a: torch.Tensor, b: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Mean structural similarity of (N,C,H,W) images in [0,1], per image: (N,)."""
    channels = a.shape[1]
    window = gaussian_window(window_size).to(a).expand(channels, 1, window_size, window_size)

    def blur(x):
        return F.conv2d(x, window, groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    value = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return value.mean(dim=(1, 2, 3))


def face_ellipse(size: int, device=None) -> torch.Tensor:
    """(1,1,S,S) mask of the face region of an aligned crop (coverage 1.6 of the alignment template)."""
    grid = make_coordinate_grid((size, size), device=device)
    x, y = grid[..., 0], grid[..., 1]
    inside = (x / 0.62) ** 2 + ((y - 0.08) / 0.78) ** 2
    return torch.clamp((1.15 - inside) / 0.3, 0.0, 1.0)[None, None]


def random_affine(batch: int, generator: torch.Generator, rotation_deg=10.0, scale=0.05, shift=0.05) -> torch.Tensor:
    """(N,2,3) matrices for affine_grid: small rotations, zooms and shifts."""
    angle = (torch.rand(batch, generator=generator) * 2 - 1) * math.radians(rotation_deg)
    zoom = 1 + (torch.rand(batch, generator=generator) * 2 - 1) * scale
    offset = (torch.rand(batch, 2, generator=generator) * 2 - 1) * shift * 2
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    return torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)


def warped_batch(faces: torch.Tensor, generator: torch.Generator, warp_strength: float = 0.06, points: int = 5):
    """(input, target, target mask): all three see the same random affine and flip; the input also a
    smooth random warp, which the autoencoder must undo (DeepFaceLab's warped-input training)."""
    n, _, h, w = faces.shape
    affine_grid = F.affine_grid(random_affine(n, generator).to(faces), (n, 3, h, w), align_corners=True)
    flip = torch.rand(n, generator=generator) < 0.5
    affine_grid[flip, ..., 0] = -affine_grid[flip, ..., 0]
    target = F.grid_sample(faces, affine_grid, padding_mode="border", align_corners=True)
    target_mask = F.grid_sample(face_ellipse(h, faces.device).expand(n, 1, h, w), affine_grid, align_corners=True)
    coarse = (torch.rand(n, 2, points, points, generator=generator) * 2 - 1) * warp_strength
    offsets = F.interpolate(coarse.to(faces), size=(h, w), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    warped = F.grid_sample(faces, affine_grid + offsets, padding_mode="border", align_corners=True)
    return warped, target, target_mask


def swap_loss(prediction: torch.Tensor, mask: torch.Tensor, target: torch.Tensor, target_mask: torch.Tensor):
    """(total, dssim, l1, mask loss): DSSIM and L1 inside the face mask (x10 each, as DeepFaceLab
    weights them) plus mean squared error of the predicted mask."""
    masked_prediction = prediction * target_mask + target * (1 - target_mask)
    dssim = ((1 - ssim(masked_prediction, target)) / 2).mean()
    l1 = ((prediction - target).abs() * target_mask).mean()
    mask_loss = F.mse_loss(mask, target_mask.expand_as(mask))
    return 10 * dssim + 10 * l1 + 10 * mask_loss, dssim, l1, mask_loss
