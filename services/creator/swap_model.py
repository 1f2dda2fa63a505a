"""Face swap models on disk: a settings file (``swap.json``) and a checkpoint, put together here.

A training run folder holds both plus the optimizer state; a release (what the registry stores and
TorchServe serves) holds ``swap.json`` and a weights-only checkpoint ``{"model": state_dict}``.
Loading is strict: a checkpoint that does not fit the settings, or a truncated file, is refused with
a message that says which."""

from __future__ import annotations

import json
import os
import pathlib

import torch

from services.creator.archs.autoencoder_arch import FaceSwapAutoencoder
from services.creator.checkpoints import CheckpointMismatch, load_state_strict, read_checkpoint

CHECKPOINT = "checkpoint.pth.tar"
SETTINGS = "swap.json"
REALISM = "realism.json"  # `dfp swap evaluate`'s report on held-out target frames
IDENTITIES = ("a", "b")


def build_model(settings: dict) -> FaceSwapAutoencoder:
    return FaceSwapAutoencoder(settings["resolution"], IDENTITIES, settings["archi"], **settings["dims"])


def read_settings(path: str | os.PathLike) -> dict:
    try:
        settings = json.loads(pathlib.Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointMismatch(f"{path}: not readable face swap settings: {exc}") from None
    missing = {"resolution", "archi", "dims", "coverage"} - set(settings)
    if missing:
        raise CheckpointMismatch(f"{path}: face swap settings lack {', '.join(sorted(missing))}")
    return settings


def load_model(settings_path: str | os.PathLike, checkpoint_path: str | os.PathLike
               ) -> tuple[FaceSwapAutoencoder, dict]:
    """The model in eval mode on the CPU, and its settings."""
    settings = read_settings(settings_path)
    model = build_model(settings)
    checkpoint = read_checkpoint(checkpoint_path)
    if "model" not in checkpoint:
        raise CheckpointMismatch(f"{checkpoint_path}: not a face swap checkpoint (needs 'model')")
    load_state_strict(model, {k: v.float() for k, v in checkpoint["model"].items()}, "face swap model")
    return model.eval(), settings


def load_run(run: pathlib.Path) -> tuple[FaceSwapAutoencoder, dict]:
    return load_model(run / SETTINGS, run / CHECKPOINT)


def export_release(run: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """``out`` with the settings and the model's weights alone (no optimizer state)."""
    model, settings = load_run(run)
    out.mkdir(parents=True, exist_ok=True)
    (out / SETTINGS).write_text(json.dumps(settings, indent=2))
    torch.save({"model": model.state_dict()}, out / CHECKPOINT)
    return out
