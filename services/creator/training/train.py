"""Training FOMM on talking-head clips: (source, driving) pairs are two frames of one clip, and,
when the config asks, a face still and the same still warped; the generator must rebuild the
driving frame from the source and the keypoints of both.

Losses: the image pyramid L1 (in place of the published VGG19 pyramid, see losses.py) and the two
equivariance constraints. Adam with the published betas. Checkpoints are in the published layout
plus the optimizer states and the step, so training resumes where it stopped."""

from __future__ import annotations

import json
import logging
import pathlib
import time

import numpy as np
import torch

from dfp.config import shared_dir
from dfp.provenance import code_version
from services.creator import checkpoints
from services.creator.training import clips as clips_lib
from services.creator.training.evaluate import reconstruction_l1
from services.creator.training.losses import ImagePyramid, RandomTPS, equivariance_losses, pyramid_l1

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pth.tar"


class PairSampler:
    """Random (source, driving) frame pairs from the training part of random clips."""

    def __init__(self, clips: list[clips_lib.Clip], seed: int):
        self.clips = [clip for clip in clips if clip.split_index >= 2]
        weights = np.array([clip.split_index for clip in self.clips], dtype=np.float64)
        self.weights = weights / weights.sum()
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        sources, drivings = [], []
        for clip_index in self.rng.choice(len(self.clips), size=size, p=self.weights):
            clip = self.clips[clip_index]
            first, second = self.rng.choice(clip.split_index, size=2, replace=False)
            pair = np.stack([clip.frames[first], clip.frames[second]])
            if self.rng.random() < 0.5:
                pair = pair[:, :, ::-1]
            sources.append(pair[0])
            drivings.append(pair[1])

        def tensor(frames):
            return torch.from_numpy(np.stack(frames).astype(np.float32) / 255.0).permute(0, 3, 1, 2)

        return tensor(sources), tensor(drivings)


class StillPairSampler:
    """(source, driving) pairs made from face stills of many people: the driving image is the still
    under a random affine + thin-plate-spline warp. Ten clips show the keypoint detector ten
    people; these pairs show it thousands, so that its keypoints follow the face of someone it never
    saw (``train_params.still_pairs``: folder under the shared data, count, share of each batch,
    warp sizes)."""

    def __init__(self, folder: pathlib.Path, count: int, size: int, transform_params: dict, seed: int):
        from PIL import Image

        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
        if not paths:
            raise FileNotFoundError(f"no face stills in {folder}")
        self.stills = np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.LANCZOS))
                                for p in paths])
        self.transform_params = transform_params
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        picked = self.stills[self.rng.choice(len(self.stills), size=size)]
        flips = self.rng.random(size) < 0.5
        picked = np.where(flips[:, None, None, None], picked[:, :, ::-1], picked)
        source = torch.from_numpy(picked.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            driving = RandomTPS(size, generator=self.generator, **self.transform_params).transform_frame(source)
        return source, driving


def still_pair_sampler(train_params: dict, size: int, seed: int) -> tuple[StillPairSampler | None, float]:
    """The sampler ``train_params.still_pairs`` asks for and its share of each batch (None, 0 without)."""
    settings = train_params.get("still_pairs")
    if not settings:
        return None, 0.0
    folder = shared_dir() / "data" / settings["folder"]
    return (StillPairSampler(folder, int(settings["count"]), size, settings["transform_params"], seed),
            float(settings["share"]))


def train(config_path: pathlib.Path, data: pathlib.Path, out: pathlib.Path, steps: int | None = None,
          seed: int = 0, threads: int = 0, command: str = "") -> dict:
    """Train (or resume) into ``out``; returns the held-out evaluation of the final model."""
    if threads:
        torch.set_num_threads(threads)
    config = checkpoints.load_config(config_path)
    train_params = config["train_params"]
    steps = steps or int(train_params["num_steps"])
    size = int(config["dataset_params"]["frame_shape"][0])
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(pathlib.Path(config_path).read_text())
    if not (out / "run.json").exists():
        (out / "run.json").write_text(json.dumps({"command": command, "code_version": code_version(), "seed": seed,
                                                  "data": str(data)}, indent=2))

    model = checkpoints.build_networks(config)
    betas = (0.5, 0.999)
    optimizer_generator = torch.optim.Adam(model.generator.parameters(), lr=train_params["lr_generator"], betas=betas)
    optimizer_kp = torch.optim.Adam(model.kp_detector.parameters(), lr=train_params["lr_kp_detector"], betas=betas)
    step = 0
    checkpoint_path = out / CHECKPOINT
    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        checkpoints.load_state_strict(model.generator, state["generator"], "generator")
        checkpoints.load_state_strict(model.kp_detector, state["kp_detector"], "kp_detector")
        optimizer_generator.load_state_dict(state["optimizer_generator"])
        optimizer_kp.load_state_dict(state["optimizer_kp_detector"])
        step = int(state["step"])
        log.info("resumed from step %d", step)

    clips = clips_lib.load_clips(data, size, clips_lib.unseen_clips(config))
    sampler = PairSampler(clips, seed + step)
    stills, still_share = still_pair_sampler(train_params, size, seed + step)
    batch_size = int(train_params["batch_size"])
    still_count = int(round(batch_size * still_share))
    weights = train_params["loss_weights"]
    pyramid = ImagePyramid(train_params["scales"], config["model_params"]["common_params"]["num_channels"])
    tps_generator = torch.Generator().manual_seed(seed + step)
    model.generator.train()
    model.kp_detector.train()
    started = time.monotonic()
    with open(out / "log.jsonl", "a", encoding="utf-8") as log_file:
        while step < steps:
            source, driving = sampler.batch(batch_size - still_count)
            if still_count:
                still_source, still_driving = stills.batch(still_count)
                source, driving = torch.cat([source, still_source]), torch.cat([driving, still_driving])
            kp_source = model.kp_detector(source)
            kp_driving = model.kp_detector(driving)
            generated = model.generator(source, kp_source=kp_source, kp_driving=kp_driving)
            reconstruction = pyramid_l1(pyramid, generated["prediction"], driving, weights["reconstruction"])
            transform = RandomTPS(driving.shape[0], generator=tps_generator, **train_params["transform_params"])
            value_loss, jacobian_loss = equivariance_losses(model.kp_detector, driving, kp_driving, transform)
            loss = (reconstruction + weights["equivariance_value"] * value_loss
                    + weights["equivariance_jacobian"] * jacobian_loss)
            optimizer_generator.zero_grad()
            optimizer_kp.zero_grad()
            loss.backward()
            optimizer_generator.step()
            optimizer_kp.step()
            step += 1
            if step % 25 == 0 or step == steps:
                record = {"step": step, "loss": loss.item(), "reconstruction": reconstruction.item(),
                          "equivariance_value": value_loss.item(), "equivariance_jacobian": jacobian_loss.item(),
                          "seconds": round(time.monotonic() - started, 1)}
                log_file.write(json.dumps(record) + "\n")
                log_file.flush()
            if step % int(train_params["checkpoint_every"]) == 0 or step == steps:
                checkpoints.save_checkpoint(model, checkpoint_path, step=step,
                                            optimizer_generator=optimizer_generator.state_dict(),
                                            optimizer_kp_detector=optimizer_kp.state_dict())
    model.eval()
    metrics = reconstruction_l1(model, clips)
    metrics["steps"] = step
    (out / "eval.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    return metrics
