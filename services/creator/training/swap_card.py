"""Model cards for trained face swap pairs: what the registry stores beside the weights."""

from __future__ import annotations

import json
import pathlib

from dfp.provenance import code_version
from services.creator import swap_model
from services.creator.checkpoints import CheckpointMismatch, read_checkpoint
from services.creator.training.swap_train import HOLDOUT_FRACTION


def swap_card(run: pathlib.Path, release: pathlib.Path, command: str) -> dict:
    """The card of a finished run's release: held-out metrics of these weights, both face sets with
    their consent records, and how it was trained."""
    model, settings = swap_model.load_model(release / swap_model.SETTINGS, release / swap_model.CHECKPOINT)
    steps = int(read_checkpoint(run / swap_model.CHECKPOINT)["step"])
    evaluation_path = run / "eval.json"
    evaluation = json.loads(evaluation_path.read_text()) if evaluation_path.exists() else {}
    if evaluation.get("steps") != steps:
        raise CheckpointMismatch(f"{run} has no evaluation of its checkpoint at step {steps}; run "
                                 f"`dfp swap train ... --out {run} --steps {steps}` to measure it before registering")
    metrics = {"heldout": evaluation["heldout"]}
    realism_path = run / swap_model.REALISM
    realism = json.loads(realism_path.read_text()) if realism_path.exists() else {}
    if realism.get("steps") == steps:
        metrics["realism"] = {"summary": realism["summary"], "pairs": realism["pairs"],
                              "max_frames": realism["max_frames"], "command": "dfp swap evaluate"}
    return {
        "architecture": f"DeepFaceLab-style autoencoder ({settings['archi'].upper()}): shared encoder, "
                        "one decoder per identity with a mask output",
        "resolution": settings["resolution"],
        "coverage": settings["coverage"],
        "identities": settings["facesets"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "metrics": metrics,
        "data": {"heldout_fraction": HOLDOUT_FRACTION,
                 "heldout": "the last fifth of each video face set's source frames, never trained on"},
        "training": {"steps": steps, "batch_size": settings["batch_size"], "learning_rate": settings["learning_rate"],
                     "seed": settings["seed"], "losses": "DSSIM + L1 inside the face, mask L2 (warped-input training)",
                     "command": settings.get("command") or command},
        "settings": settings,
        "code_version": code_version(),
        "trained_with_code_version": settings.get("code_version"),
    }
