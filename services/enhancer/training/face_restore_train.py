"""Training FaceRestoreUNet on clean face crops degraded on the fly (see `degradation`).

Each step takes random square patches of random faces (flipped at random), degrades each face whole
and cuts the same patch from both, and minimises the L1 distance between the network's output and
the clean patch. Every `eval_every` steps the network restores a fixed set of held-out faces, whole,
degraded with a fixed seed, and the weights with the best PSNR are kept. Resumable: the run folder
holds the latest state (model, optimizer, step) and the best weights in BasicSR's layout.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
import pathlib
import time

import numpy as np
import torch

from dfp import media
from dfp.provenance import code_version
from services.enhancer import metrics
from services.enhancer.archs.face_restore_arch import FaceRestoreUNet
from services.enhancer.training.degradation import degrade

log = logging.getLogger(__name__)

STATE = "state.pth"
BEST = "face_restore.pth"
SETTINGS = "settings.json"
HISTORY = "history.jsonl"


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    steps: int = 4000
    batch_size: int = 16
    patch: int = 64
    learning_rate: float = 2e-4
    num_feat: int = 48
    num_block: int = 2
    train_faces: int = 3000
    val_faces: int = 64
    eval_every: int = 250
    seed: int = 0


def read_faces(data: pathlib.Path, split: str, limit: int, label: str = "real") -> tuple[np.ndarray, list[str]]:
    """Up to `limit` faces of one split and label from a labels.csv folder, as uint8 NxHxWx3."""
    with open(data / "labels.csv", newline="") as handle:
        paths = [row["path"] for row in csv.DictReader(handle) if row["split"] == split and row["label"] == label]
    if not paths:
        raise ValueError(f"{data / 'labels.csv'} has no {label} faces in split {split!r}")
    paths = paths[:limit]
    return np.stack([media.decode_image(data / path, 50_000_000) for path in paths]), paths


def _batch(faces: np.ndarray, settings: TrainSettings, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    clean, degraded = [], []
    height, width = faces.shape[1:3]
    for index in rng.integers(0, len(faces), settings.batch_size):
        face = faces[index][:, ::-1] if rng.random() < 0.5 else faces[index]
        bad = degrade(np.ascontiguousarray(face), rng)
        top, left = rng.integers(0, height - settings.patch + 1), rng.integers(0, width - settings.patch + 1)
        clean.append(face[top:top + settings.patch, left:left + settings.patch])
        degraded.append(bad[top:top + settings.patch, left:left + settings.patch])

    def tensor(patches):
        return torch.from_numpy(np.stack(patches).astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()

    return tensor(degraded), tensor(clean)


def validation_set(faces: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(degraded, clean) held-out faces, the same on every run with this seed."""
    rng = np.random.default_rng(seed + 1)
    return np.stack([degrade(face, rng) for face in faces]), faces


@torch.inference_mode()
def restore(model: FaceRestoreUNet, faces: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Restored uint8 faces (sides multiples of 8)."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(faces), batch_size):
        batch = torch.from_numpy(faces[start:start + batch_size].astype(np.float32) / 255.0).permute(0, 3, 1, 2).to(device)
        restored = model(batch.float()).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        out.append((restored * 255.0 + 0.5).astype(np.uint8))
    return np.concatenate(out)


def evaluate(model: FaceRestoreUNet, degraded: np.ndarray, clean: np.ndarray) -> dict:
    model.eval()
    restored = restore(model, degraded)
    model.train()
    return {
        "psnr": float(np.mean([metrics.psnr(r, c) for r, c in zip(restored, clean)])),
        "ssim": float(np.mean([metrics.ssim(r, c) for r, c in zip(restored, clean)])),
        "input_psnr": float(np.mean([metrics.psnr(d, c) for d, c in zip(degraded, clean)])),
    }


def save_weights(model: FaceRestoreUNet, path: pathlib.Path) -> None:
    """BasicSR's layout ({'params': state dict}), fp16: what `face_restorers.load_unet` reads."""
    partial = path.with_suffix(".partial")
    torch.save({"params": {key: value.half() for key, value in model.state_dict().items()}}, partial)
    partial.replace(path)


def train(data: pathlib.Path, run: pathlib.Path, settings: TrainSettings, device: str = "cpu", command: str = "",
          init: pathlib.Path | None = None) -> dict:
    """Trains into `run` (resuming it when it has a state); `init` starts a new run from weights."""
    run.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    faces, _ = read_faces(data, "train", settings.train_faces)
    val_degraded, val_clean = validation_set(read_faces(data, "val", settings.val_faces)[0], settings.seed)
    # Sides must be multiples of 8: cut the border (224 stays 224).
    side = (min(val_clean.shape[1:3]) // 8) * 8
    val_degraded, val_clean = val_degraded[:, :side, :side], val_clean[:, :side, :side]

    model = FaceRestoreUNet(num_feat=settings.num_feat, num_block=settings.num_block).to(device)
    if init is not None and not (run / STATE).exists():
        state = torch.load(init, map_location=device, weights_only=True)
        model.load_state_dict({key: value.float() for key, value in state.get("params", state).items()}, strict=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.learning_rate, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, settings.steps, eta_min=settings.learning_rate / 20)
    step, best = 0, {"psnr": -1.0}
    if (run / STATE).exists():
        state = torch.load(run / STATE, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, best = state["step"], json.loads(state["best"])
        rng = np.random.default_rng([settings.seed, step])
        log.info("resumed at step %d", step)
    (run / SETTINGS).write_text(json.dumps({**dataclasses.asdict(settings), "device": device, "command": command,
                                            "code_version": code_version(), "data": str(data),
                                            "init": str(init) if init else None}, indent=2) + "\n")
    started = time.monotonic()
    while step < settings.steps:
        degraded, clean = _batch(faces, settings, rng)
        loss = torch.nn.functional.l1_loss(model(degraded.to(device)), clean.to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        if step % settings.eval_every == 0 or step == settings.steps:
            scores = {"step": step, "loss": loss.item(), **evaluate(model, val_degraded, val_clean),
                      "seconds": round(time.monotonic() - started, 1)}
            with open(run / HISTORY, "a") as history:
                history.write(json.dumps(scores) + "\n")
            if scores["psnr"] > best["psnr"]:
                best = scores
                save_weights(model, run / BEST)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step, "best": json.dumps(best)}, run / STATE)
            log.info("step %d loss %.4f val PSNR %.2f (input %.2f) SSIM %.4f", step, scores["loss"], scores["psnr"],
                     scores["input_psnr"], scores["ssim"])
    return best
