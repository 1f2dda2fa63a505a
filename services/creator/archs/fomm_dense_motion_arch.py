"""FOMM dense motion network: blends K+1 sparse motions (one per keypoint plus the background
identity) into a dense deformation, and predicts the occlusion map."""

import torch
import torch.nn.functional as F
from torch import nn

from services.creator.archs.fomm_blocks import (
    AntiAliasInterpolation2d,
    Hourglass,
    kp2gaussian,
    make_coordinate_grid,
    warp,
)


class DenseMotionNetwork(nn.Module):
    """Dense motion from sparse keypoint motions (paper sections 3.1-3.2).

    Args:
        block_expansion, num_blocks, max_features: the hourglass.
        num_kp: number of keypoints K.
        num_channels: image channels.
        estimate_occlusion_map: also predict the occlusion map.
        scale_factor: works on the source anti-alias downsampled by this factor.
        kp_variance: variance of the keypoint gaussians.

    Returns ``sparse_deformed`` (N,K+1,C,h,w), ``mask`` (N,K+1,h,w), ``deformation`` (N,h,w,2) and
    ``occlusion_map`` (N,1,h,w) when enabled.
    """

    def __init__(
        self,
        block_expansion,
        num_blocks,
        max_features,
        num_kp,
        num_channels,
        estimate_occlusion_map=False,
        scale_factor=1,
        kp_variance=0.01,
    ):
        super().__init__()
        self.hourglass = Hourglass(
            block_expansion=block_expansion,
            in_features=(num_kp + 1) * (num_channels + 1),
            max_features=max_features,
            num_blocks=num_blocks,
        )
        self.mask = nn.Conv2d(self.hourglass.out_filters, num_kp + 1, kernel_size=(7, 7), padding=(3, 3))
        if estimate_occlusion_map:
            self.occlusion = nn.Conv2d(self.hourglass.out_filters, 1, kernel_size=(7, 7), padding=(3, 3))
        else:
            self.occlusion = None
        self.num_kp = num_kp
        self.scale_factor = scale_factor
        self.kp_variance = kp_variance
        if scale_factor != 1:
            self.down = AntiAliasInterpolation2d(num_channels, scale_factor)

    def create_heatmap_representations(self, source_image, kp_driving, kp_source):
        """Driving minus source keypoint gaussians, with a zero map for the background: (N,K+1,1,h,w)."""
        spatial_size = source_image.shape[2:]
        heatmap = kp2gaussian(kp_driving["value"], spatial_size, self.kp_variance) - kp2gaussian(
            kp_source["value"], spatial_size, self.kp_variance
        )
        background = torch.zeros_like(heatmap[:, :1])
        return torch.cat([background, heatmap], dim=1).unsqueeze(2)

    def create_sparse_motions(self, source_image, kp_driving, kp_source):
        """Per keypoint, where each driving-frame pixel comes from in the source: (N,K+1,h,w,2)."""
        n, _, h, w = source_image.shape
        identity_grid = make_coordinate_grid((h, w), kp_source["value"].dtype, source_image.device).view(1, 1, h, w, 2)
        coordinate_grid = identity_grid - kp_driving["value"].view(n, self.num_kp, 1, 1, 2)
        if "jacobian" in kp_driving:
            jacobian = torch.matmul(kp_source["jacobian"], torch.inverse(kp_driving["jacobian"]))
            jacobian = jacobian.unsqueeze(-3).unsqueeze(-3).repeat(1, 1, h, w, 1, 1)
            coordinate_grid = torch.matmul(jacobian, coordinate_grid.unsqueeze(-1)).squeeze(-1)
        driving_to_source = coordinate_grid + kp_source["value"].view(n, self.num_kp, 1, 1, 2)
        return torch.cat([identity_grid.repeat(n, 1, 1, 1, 1), driving_to_source], dim=1)

    def create_deformed_source_image(self, source_image, sparse_motions):
        """The source warped by each sparse motion: (N,K+1,C,h,w)."""
        n, c, h, w = source_image.shape
        copies = self.num_kp + 1
        source_repeat = source_image.unsqueeze(1).expand(n, copies, c, h, w).reshape(n * copies, c, h, w)
        deformed = warp(source_repeat, sparse_motions.reshape(n * copies, h, w, 2))
        return deformed.view(n, copies, c, h, w)

    def forward(self, source_image, kp_driving, kp_source):
        if self.scale_factor != 1:
            source_image = self.down(source_image)
        n, _, h, w = source_image.shape
        heatmap_representation = self.create_heatmap_representations(source_image, kp_driving, kp_source)
        sparse_motion = self.create_sparse_motions(source_image, kp_driving, kp_source)
        deformed_source = self.create_deformed_source_image(source_image, sparse_motion)
        out = {"sparse_deformed": deformed_source}

        features = torch.cat([heatmap_representation, deformed_source], dim=2).view(n, -1, h, w)
        prediction = self.hourglass(features)
        mask = F.softmax(self.mask(prediction), dim=1)
        out["mask"] = mask
        deformation = (sparse_motion.permute(0, 1, 4, 2, 3) * mask.unsqueeze(2)).sum(dim=1)
        out["deformation"] = deformation.permute(0, 2, 3, 1)
        if self.occlusion is not None:
            out["occlusion_map"] = torch.sigmoid(self.occlusion(prediction))
        return out
