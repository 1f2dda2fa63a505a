"""The paper's reconstruction protocol on held-out frames: source = the clip's first frame, driving
= the same clip's held-out frames (its last 20%), keypoints used as detected (no normalisation);
mean absolute error per pixel in [0,1], against copying the source unchanged."""

from __future__ import annotations

import numpy as np
import torch

from services.creator.checkpoints import FommModel
from services.creator.training.clips import Clip


@torch.inference_mode()
def reconstruction_l1(model: FommModel, clips: list[Clip], batch_size: int = 16, device: str = "cpu") -> dict:
    model.to(device).eval()
    per_clip = {}
    total_model = total_copy = 0.0
    total_frames = 0
    for clip in clips:
        source = torch.from_numpy(clip.frames[0].astype(np.float32) / 255.0).permute(2, 0, 1)[None].to(device)
        kp_source = model.kp_detector(source)
        heldout = clip.heldout_frames
        clip_model = clip_copy = 0.0
        for start in range(0, len(heldout), batch_size):
            frames = heldout[start : start + batch_size].astype(np.float32) / 255.0
            driving = torch.from_numpy(frames).permute(0, 3, 1, 2).to(device)
            n = driving.shape[0]
            kp_driving = model.kp_detector(driving)
            expanded = {key: value.expand(n, *value.shape[1:]) for key, value in kp_source.items()}
            prediction = model.generator(source.expand(n, -1, -1, -1), kp_source=expanded, kp_driving=kp_driving)["prediction"]
            clip_model += float((prediction - driving).abs().mean(dim=(1, 2, 3)).sum())
            clip_copy += float((source - driving).abs().mean(dim=(1, 2, 3)).sum())
        frames_count = len(heldout)
        per_clip[clip.name] = {"frames": frames_count, "l1": clip_model / frames_count,
                               "copy_source_l1": clip_copy / frames_count, "unseen": clip.unseen}
        total_model += clip_model
        total_copy += clip_copy
        total_frames += frames_count
    return {
        "l1": total_model / total_frames,
        "copy_source_l1": total_copy / total_frames,
        "heldout_frames": total_frames,
        "per_clip": per_clip,
    }
