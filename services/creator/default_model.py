"""The platform's own small FOMM model, committed under models/creator/fomm-small-64/ (config,
fp16 checkpoint in the published layout, model card), used when no checkpoint is given; and the
face restorer that full-resolution animation applies to the generator's pixels (the enhancer's)."""

from __future__ import annotations

import pathlib

from services.creator import checkpoints

NAME = "dfp-fomm-small-64"
FOLDER = pathlib.Path(__file__).resolve().parents[2] / "models" / "creator" / "fomm-small-64"
CONFIG = FOLDER / "config.yaml"
CHECKPOINT = FOLDER / "checkpoint.pth.tar"
FACE_RESTORER = FOLDER.parents[1] / "enhancer" / "face-restore" / "face_restore.pth"


def load() -> checkpoints.FommModel:
    if not CHECKPOINT.exists():
        raise FileNotFoundError(
            f"the platform's animation model is missing ({CHECKPOINT}); restore it from git, or pass --config and --checkpoint"
        )
    return checkpoints.load_model(CONFIG, CHECKPOINT)


def load_face_restorer(device: str = "cpu", path: pathlib.Path | None = None):
    """The platform's face restorer as a full-resolution ``Restore``: (B,S,S,3) uint8 -> same."""
    from services.enhancer.face_restorers import load_unet

    restorer = load_unet(path or FACE_RESTORER, device=device)

    def restore(faces):
        return restorer.restore(faces, landmarks=None)

    return restore
