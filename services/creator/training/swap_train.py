"""Training the face swap autoencoder on two face sets (identity a and identity b).

Each step takes a batch of each identity's faces, warps them at random (DeepFaceLab's warped-input
training), and asks the shared encoder and that identity's decoder to rebuild the unwarped face and
its mask. The last HOLDOUT_FRACTION of each video face set (by source frame) is never trained on; it
is what the decoders are measured on and what swaps are merged onto. Resumable: the run folder keeps
the model, the optimizer and the step."""

from __future__ import annotations

import json
import logging
import pathlib
import time

import numpy as np
import torch
from PIL import Image

from dfp.provenance import code_version
from services.creator.archs.autoencoder_arch import FaceSwapAutoencoder
from services.creator.checkpoints import CheckpointMismatch, load_state_strict, read_checkpoint
from services.creator.pipelines import faceset as facesets
from services.creator.swap_model import CHECKPOINT, SETTINGS, build_model
from services.creator.training.losses_swap import face_ellipse, ssim, swap_loss, warped_batch

log = logging.getLogger(__name__)

HOLDOUT_FRACTION = 0.2
MIN_TRAIN_FACES = 16
# A small default: trains at a step per second at 64x64 on two CPU cores.
DEFAULT_DIMS = {"e_dims": 32, "ae_dims": 128, "d_dims": 32, "d_mask_dims": 12}


def split(manifest: dict, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(train, held-out) faces: held out are those from the last fifth of the source's frames, or the
    last fifth of the faces for an image folder."""
    origins = [entry["origin"] for entry in manifest["faces"]]
    if all(o.startswith("frame:") for o in origins) and manifest.get("source_frames"):
        boundary = (1 - HOLDOUT_FRACTION) * manifest["source_frames"]
        heldout = np.array([int(o.split(":")[1]) >= boundary for o in origins])
    else:
        heldout = np.arange(len(faces)) >= round(len(faces) * (1 - HOLDOUT_FRACTION))
    return faces[~heldout], faces[heldout]


def _tensor(faces: np.ndarray, resolution: int) -> torch.Tensor:
    if faces.shape[1] != resolution:
        faces = np.stack([np.asarray(Image.fromarray(f).resize((resolution, resolution), Image.BICUBIC)) for f in faces])
    return torch.from_numpy(faces.astype(np.float32) / 255.0).permute(0, 3, 1, 2).contiguous()


@torch.inference_mode()
def evaluate(model: FaceSwapAutoencoder, heldout: dict[str, torch.Tensor]) -> dict:
    """Each decoder rebuilding its own identity's held-out faces: SSIM and L1 inside the face mask."""
    metrics = {}
    for identity, faces in heldout.items():
        if len(faces) == 0:
            continue
        image, _ = model(faces, identity)
        mask = face_ellipse(faces.shape[-1], faces.device)
        metrics[identity] = {
            "faces": len(faces),
            "ssim": float(ssim(image * mask + faces * (1 - mask), faces).mean()),
            "l1": float(((image - faces).abs() * mask).sum() / (mask.sum() * faces.shape[0] * 3)),
        }
    return metrics


@torch.inference_mode()
def preview(model: FaceSwapAutoencoder, heldout: dict[str, torch.Tensor], path: pathlib.Path, count: int = 4) -> None:
    """Rows per identity: the face, rebuilt by its own decoder, swapped to the other identity."""
    rows = []
    for identity, other in (("a", "b"), ("b", "a")):
        faces = heldout[identity][:count]
        if len(faces) == 0:
            continue
        own, _ = model(faces, identity)
        swapped, _ = model(faces, other)
        for trio in zip(faces, own, swapped):
            rows.append(torch.cat(list(trio), dim=2))
    grid = torch.cat(rows, dim=1).permute(1, 2, 0).float().cpu().numpy()
    Image.fromarray((grid * 255 + 0.5).astype(np.uint8)).save(path)


def train_step(model: FaceSwapAutoencoder, optimizer: torch.optim.Optimizer, batches: dict[str, torch.Tensor],
               generator: torch.Generator) -> tuple[torch.Tensor, dict]:
    """One optimisation step over a batch of faces per identity; returns the loss and its parts."""
    total = 0.0
    losses = {}
    optimizer.zero_grad()
    for identity, faces in batches.items():
        warped, target, target_mask = warped_batch(faces, generator)
        image, mask = model(warped, identity)
        loss, dssim, l1, mask_loss = swap_loss(image, mask, target, target_mask)
        total = total + loss
        losses[identity] = {"dssim": dssim.item(), "l1": l1.item(), "mask": mask_loss.item()}
    total.backward()
    optimizer.step()
    return total, losses


def train_swap(faceset_a: pathlib.Path, faceset_b: pathlib.Path, out: pathlib.Path, steps: int, resolution: int = 64,
               archi: str = "df", dims: dict | None = None, batch_size: int = 8, learning_rate: float = 5e-5,
               checkpoint_every: int = 100, seed: int = 0, command: str = "",
               progress=None, device: str = "cpu") -> dict:
    """Train (or resume) into ``out`` on ``device``; returns the held-out metrics of the final model."""
    data = {}
    manifests = {}
    for identity, folder in (("a", faceset_a), ("b", faceset_b)):
        manifest, faces = facesets.load(folder)
        train_faces, heldout_faces = split(manifest, faces)
        if len(train_faces) < MIN_TRAIN_FACES:
            raise facesets.FaceSetError(
                f"face set {folder} has {len(train_faces)} faces to train on; at least {MIN_TRAIN_FACES} are needed")
        data[identity] = (_tensor(train_faces, resolution), _tensor(heldout_faces, resolution))
        manifests[identity] = {"folder": folder.name, "source": manifest["source"], "faces": len(faces),
                               "train": len(train_faces), "heldout": len(heldout_faces),
                               "coverage": manifest["coverage"], "consent": manifest["consent"]}
    if manifests["a"]["coverage"] != manifests["b"]["coverage"]:
        raise facesets.FaceSetError("the two face sets were aligned with different coverage; extract them alike")
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / SETTINGS
    if settings_path.exists():
        settings = json.loads(settings_path.read_text())
    else:
        settings = {"resolution": resolution, "archi": archi, "coverage": manifests["a"]["coverage"],
                    "dims": dims or DEFAULT_DIMS,
                    "facesets": manifests, "batch_size": batch_size, "learning_rate": learning_rate, "seed": seed,
                    "command": command, "code_version": code_version()}
        settings_path.write_text(json.dumps(settings, indent=2))
    torch.manual_seed(seed)
    model = build_model(settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings["learning_rate"], betas=(0.5, 0.999))
    step = 0
    if (out / CHECKPOINT).exists():
        state = read_checkpoint(out / CHECKPOINT)
        if not {"model", "optimizer", "step"} <= set(state):
            raise CheckpointMismatch(f"{out / CHECKPOINT}: not a face swap training checkpoint; "
                                     "remove it or train into a new folder")
        load_state_strict(model, state["model"], "face swap model")
        optimizer.load_state_dict(state["optimizer"])
        step = int(state["step"])
    generator = torch.Generator().manual_seed(seed + step)
    heldout = {identity: tensors[1].to(device) for identity, tensors in data.items()}
    model.train()
    started = time.monotonic()
    with open(out / "log.jsonl", "a", encoding="utf-8") as log_file:
        while step < steps:
            batches = {}
            for identity, (train_faces, _) in data.items():
                picks = torch.randint(len(train_faces), (settings["batch_size"],), generator=generator)
                batches[identity] = train_faces[picks].to(device)
            total, losses = train_step(model, optimizer, batches, generator)
            step += 1
            if step % 25 == 0 or step == steps:
                log_file.write(json.dumps({"step": step, "loss": total.item(), **losses,
                                           "seconds": round(time.monotonic() - started, 1)}) + "\n")
                log_file.flush()
                if progress is not None:
                    progress(step, steps)
            if step % checkpoint_every == 0 or step == steps:
                tmp = out / f"{CHECKPOINT}.tmp"
                torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, tmp)
                tmp.replace(out / CHECKPOINT)
                model.eval()
                preview(model, heldout, out / "preview.png")
                model.train()
    model.eval()
    metrics = {"steps": step, "heldout": evaluate(model, heldout)}
    (out / "eval.json").write_text(json.dumps(metrics, indent=2))
    return metrics
