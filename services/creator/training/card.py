"""Model cards and release files for trained animation models."""

from __future__ import annotations

import json
import pathlib
import shutil

import torch

from dfp.client import sha256_file
from dfp.provenance import code_version
from services.creator import checkpoints
from services.creator.training import clips as clips_lib
from services.creator.training.evaluate import reconstruction_l1
from services.creator.training.train import CHECKPOINT


def export_release(run_dir: pathlib.Path, out_dir: pathlib.Path) -> pathlib.Path:
    """``out_dir`` with ``config.yaml`` and a weights-only fp16 checkpoint in the published layout."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    slim = {
        part: {key: value.half() if value.is_floating_point() else value for key, value in state[part].items()}
        for part in ("generator", "kp_detector")
    }
    torch.save(slim, out_dir / CHECKPOINT)
    shutil.copyfile(run_dir / "config.yaml", out_dir / "config.yaml")
    return out_dir


def animation_card(run_dir: pathlib.Path, release_dir: pathlib.Path, data: pathlib.Path, command: str) -> dict:
    """Metrics of the released (fp16) weights on the held-out frames, the data, the training set-up."""
    model = checkpoints.load_model(release_dir / "config.yaml", release_dir / CHECKPOINT)
    clips = clips_lib.load_clips(data, model.frame_size, clips_lib.unseen_clips(model.config))
    metrics = reconstruction_l1(model, clips)
    config = model.config
    run = json.loads((run_dir / "run.json").read_text()) if (run_dir / "run.json").exists() else {}
    state = torch.load(run_dir / CHECKPOINT, map_location="cpu", weights_only=True)
    return {
        "model_name": config.get("model_name"),
        "architecture": "FOMM (keypoint detector, dense motion network, occlusion-aware generator)",
        "frame_size": model.frame_size,
        "parameters": {
            "generator": sum(p.numel() for p in model.generator.parameters()),
            "kp_detector": sum(p.numel() for p in model.kp_detector.parameters()),
        },
        "metrics": {"heldout": metrics},
        "data": {
            "folder": data.name,
            "heldout_fraction": clips_lib.HOLDOUT_FRACTION,
            "clips": {
                clip.name: {"frames": len(clip.frames), "train_frames": clip.split_index, "unseen": clip.unseen,
                            "heldout_frames": len(clip.heldout_frames), "sha256": sha256_file(data / f"{clip.name}.mp4")}
                for clip in clips
            },
        },
        "training": {
            "steps": int(state["step"]),
            "train_params": config.get("train_params"),
            "losses": "image pyramid L1 (pixels, in place of the published VGG19 perceptual pyramid: no ImageNet "
                      "weights offline) + keypoint and jacobian equivariance under random TPS warps",
            "command": run.get("command") or command,
        },
        "code_version": code_version(),
        "trained_with_code_version": run.get("code_version"),
    }
