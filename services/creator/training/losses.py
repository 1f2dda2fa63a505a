"""FOMM training losses: the image pyramid reconstruction loss and the equivariance constraints
on keypoints and jacobians under random thin-plate-spline warps (paper section 3.4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from services.creator.archs.fomm_blocks import AntiAliasInterpolation2d, make_coordinate_grid


class ImagePyramid(nn.Module):
    """The image at each scale, anti-alias downsampled."""

    def __init__(self, scales, num_channels):
        super().__init__()
        self.scales = list(scales)
        self.downs = nn.ModuleList(AntiAliasInterpolation2d(num_channels, scale) for scale in self.scales)

    def forward(self, x):
        return [down(x) for down in self.downs]


def pyramid_l1(pyramid: ImagePyramid, prediction: torch.Tensor, target: torch.Tensor, weights) -> torch.Tensor:
    """Sum over scales of weight * mean |prediction - target|.

    The published loss compares VGG19 features at each scale; ImageNet VGG weights are not available
    offline, so this compares pixels at each scale instead."""
    total = prediction.new_zeros(())
    for weight, p, t in zip(weights, pyramid(prediction), pyramid(target)):
        total = total + weight * (p - t).abs().mean()
    return total


class RandomTPS:
    """A random affine + thin-plate-spline warp of a batch, with its coordinate map and jacobian."""

    def __init__(self, batch_size, sigma_affine, sigma_tps, points_tps, generator=None, device=None):
        noise = torch.randn(batch_size, 2, 3, generator=generator) * sigma_affine
        self.theta = (noise + torch.eye(2, 3).view(1, 2, 3)).to(device)
        self.control_points = make_coordinate_grid((points_tps, points_tps), device=device).view(1, 1, -1, 2)
        self.control_params = (torch.randn(batch_size, 1, points_tps**2, generator=generator) * sigma_tps).to(device)
        self.batch_size = batch_size

    def warp_coordinates(self, coordinates: torch.Tensor) -> torch.Tensor:
        """(N, P, 2) points -> where the warp sends them."""
        theta = self.theta.unsqueeze(1)
        moved = (torch.matmul(theta[..., :2], coordinates.unsqueeze(-1)) + theta[..., 2:]).squeeze(-1)
        distances = (coordinates.unsqueeze(2) - self.control_points).abs().sum(-1)
        radial = distances**2 * torch.log(distances + 1e-6) * self.control_params
        return moved + radial.sum(dim=2, keepdim=True).view(self.batch_size, coordinates.shape[1], 1)

    def transform_frame(self, frame: torch.Tensor) -> torch.Tensor:
        n, _, h, w = frame.shape
        grid = make_coordinate_grid((h, w), frame.dtype, frame.device).view(1, h * w, 2).expand(n, -1, -1)
        grid = self.warp_coordinates(grid).view(n, h, w, 2)
        return F.grid_sample(frame, grid, padding_mode="reflection", align_corners=True)

    def jacobian(self, coordinates: torch.Tensor) -> torch.Tensor:
        if not coordinates.requires_grad:
            coordinates = coordinates.detach().requires_grad_(True)
        moved = self.warp_coordinates(coordinates)
        grad_x = torch.autograd.grad(moved[..., 0].sum(), coordinates, create_graph=True)[0]
        grad_y = torch.autograd.grad(moved[..., 1].sum(), coordinates, create_graph=True)[0]
        return torch.stack([grad_x, grad_y], dim=-2)


def equivariance_losses(kp_detector, driving: torch.Tensor, kp_driving: dict, transform: RandomTPS):
    """(value loss, jacobian loss): keypoints of a warped frame, warped back, must match."""
    transformed = kp_detector(transform.transform_frame(driving))
    value_loss = (kp_driving["value"] - transform.warp_coordinates(transformed["value"])).abs().mean()
    if "jacobian" not in kp_driving:
        return value_loss, value_loss.new_zeros(())
    warped_jacobian = torch.matmul(transform.jacobian(transformed["value"]), transformed["jacobian"])
    product = torch.matmul(torch.inverse(kp_driving["jacobian"]), warped_jacobian)
    eye = torch.eye(2, device=product.device).view(1, 1, 2, 2)
    return value_loss, (eye - product).abs().mean()
