"""FOMM occlusion-aware generator: encodes the source, warps its features by the dense motion,
masks them by the occlusion map and decodes the driving frame."""

import torch
import torch.nn.functional as F
from torch import nn

from services.creator.archs.fomm_blocks import DownBlock2d, ResBlock2d, SameBlock2d, UpBlock2d, warp
from services.creator.archs.fomm_dense_motion_arch import DenseMotionNetwork


class OcclusionAwareGenerator(nn.Module):
    """Source image + source and driving keypoints -> driving frame (paper section 3.3).

    Args:
        num_channels: image channels.
        num_kp: number of keypoints.
        block_expansion: channels after the first block.
        max_features: cap on channels.
        num_down_blocks: downsamplings (and upsamplings) around the bottleneck.
        num_bottleneck_blocks: residual blocks at the bottleneck.
        estimate_occlusion_map: use the dense motion network's occlusion map.
        dense_motion_params: constructor arguments of the DenseMotionNetwork; None means no warping.
        estimate_jacobian: part of the shared ``common_params``; the keypoints carry it.

    Returns ``prediction`` (N,C,H,W) in [0,1] and, with a dense motion network, ``mask``,
    ``sparse_deformed``, ``deformation`` (N,h,w,2: where each pixel comes from in the source, at the
    dense motion's resolution), ``deformed`` (the source warped at full resolution) and
    ``occlusion_map``.
    """

    def __init__(
        self,
        num_channels,
        num_kp,
        block_expansion,
        max_features,
        num_down_blocks,
        num_bottleneck_blocks,
        estimate_occlusion_map=False,
        dense_motion_params=None,
        estimate_jacobian=False,
    ):
        super().__init__()
        if dense_motion_params is not None:
            self.dense_motion_network = DenseMotionNetwork(
                num_kp=num_kp,
                num_channels=num_channels,
                estimate_occlusion_map=estimate_occlusion_map,
                **dense_motion_params,
            )
        else:
            self.dense_motion_network = None
        self.first = SameBlock2d(num_channels, block_expansion, kernel_size=(7, 7), padding=(3, 3))

        def width(level):
            return min(max_features, block_expansion * (2**level))

        self.down_blocks = nn.ModuleList(
            DownBlock2d(width(i), width(i + 1), kernel_size=(3, 3), padding=(1, 1)) for i in range(num_down_blocks)
        )
        self.up_blocks = nn.ModuleList(
            UpBlock2d(width(num_down_blocks - i), width(num_down_blocks - i - 1), kernel_size=(3, 3), padding=(1, 1))
            for i in range(num_down_blocks)
        )
        self.bottleneck = nn.Sequential()
        for i in range(num_bottleneck_blocks):
            self.bottleneck.add_module(f"r{i}", ResBlock2d(width(num_down_blocks), kernel_size=(3, 3), padding=(1, 1)))
        self.final = nn.Conv2d(block_expansion, num_channels, kernel_size=(7, 7), padding=(3, 3))
        self.estimate_occlusion_map = estimate_occlusion_map
        self.num_channels = num_channels

    @staticmethod
    def deform_input(inp, deformation):
        """Warp ``inp`` by ``deformation``, resized bilinearly to ``inp``'s resolution first if needed."""
        _, h_old, w_old, _ = deformation.shape
        _, _, h, w = inp.shape
        if (h_old, w_old) != (h, w):
            deformation = F.interpolate(deformation.permute(0, 3, 1, 2), size=(h, w), mode="bilinear")
            deformation = deformation.permute(0, 2, 3, 1)
        return warp(inp, deformation)

    def forward(self, source_image, kp_driving, kp_source):
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)

        outputs = {}
        if self.dense_motion_network is not None:
            dense_motion = self.dense_motion_network(
                source_image=source_image, kp_driving=kp_driving, kp_source=kp_source
            )
            outputs["mask"] = dense_motion["mask"]
            outputs["sparse_deformed"] = dense_motion["sparse_deformed"]
            deformation = dense_motion["deformation"]
            outputs["deformation"] = deformation
            out = self.deform_input(out, deformation)
            occlusion_map = dense_motion.get("occlusion_map")
            if occlusion_map is not None:
                outputs["occlusion_map"] = occlusion_map
                if out.shape[2:] != occlusion_map.shape[2:]:
                    occlusion_map = F.interpolate(occlusion_map, size=out.shape[2:], mode="bilinear")
                out = out * occlusion_map
            outputs["deformed"] = self.deform_input(source_image, deformation)

        out = self.bottleneck(out)
        for block in self.up_blocks:
            out = block(out)
        outputs["prediction"] = torch.sigmoid(self.final(out))
        return outputs
