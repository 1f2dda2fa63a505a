"""The training loop: fit on the train split, keep the checkpoint with the best validation AUC.

Output folder:
    best.h5          best weights so far (Keras-2 HDF5 layout, loads like the published files)
    last.keras       model and optimizer after the last finished epoch (what --resume continues)
    state.json       epochs done, best AUC and epoch, epochs without improvement, history
    run.json         the configuration, the data it saw (split counts, labels-file hash), the code version
A run stopped at any point resumes from its last finished epoch with the same result as an
uninterrupted one up to data-order randomness, which is seeded per epoch.

Batches keep a real face and the fake made from the same source video together, augmented alike
(see augment.py): the network then meets every fake beside its real original, under the same crop,
flip and compression, rather than learning who is in the picture.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time

import keras
import numpy as np
import tensorflow as tf

from dfp.provenance import code_version
from services.detector import archs, evaluation
from services.detector.scoring import Detector
from services.detector.training import dataset as datasets
from services.detector.training.augment import AugmentConfig, augment
from services.detector.weights import load_h5_weights, save_h5_weights

log = logging.getLogger(__name__)


@dataclasses.dataclass
class TrainConfig:
    data: str
    arch: str
    out: str
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 1e-3
    lr_schedule: str = "constant"
    pair_batches: bool = True
    patience: int = 4
    seed: int = 1234
    finetune_from: str | None = None
    train_limit: int = 0
    val_limit: int = 0
    augment: AugmentConfig = dataclasses.field(default_factory=AugmentConfig)


def pair_units(samples: list[datasets.Sample]) -> list[list[int]]:
    """Indices grouped into the units training keeps together: a real face and a fake one made from
    the same source video (the i-th real with the i-th fake when a video has several); the rest alone."""
    by_video: dict[str, tuple[list[int], list[int]]] = {}
    units = []
    for index, sample in enumerate(samples):
        if sample.source_video:
            by_video.setdefault(sample.source_video, ([], []))[sample.fake].append(index)
        else:
            units.append([index])
    for reals, fakes in by_video.values():
        paired = min(len(reals), len(fakes))
        units += [[real, fake] for real, fake in zip(reals, fakes)]
        units += [[index] for index in reals[paired:] + fakes[paired:]]
    return sorted(units)


def _train_dataset(split: datasets.Split, config: TrainConfig, epoch: int) -> tf.data.Dataset:
    units = pair_units(split.samples) if config.pair_batches else [[index] for index in range(len(split.fake))]
    unit_order = np.random.default_rng(config.seed + epoch).permutation(len(units))
    order = np.array([index for unit in unit_order for index in units[unit]])
    unit_of = np.empty(len(split.fake), np.int32)
    for number, unit in enumerate(units):
        unit_of[unit] = number
    # One augmentation seed per unit and epoch: a pair is transformed alike, differently every epoch.
    seeds = np.stack([np.full(len(unit_of), config.seed + epoch, np.int32), unit_of], axis=1)
    real_target = (1 - split.fake).astype(np.float32)[:, None]
    counts = np.bincount(split.fake, minlength=2)
    class_weight = (len(split.fake) / (2.0 * np.maximum(counts, 1))).astype(np.float32)
    sample_weight = class_weight[split.fake]

    def generator():
        # Whole batches leave Python at once; augmentation then runs per image in tf.data's threads.
        for start in range(0, len(order), config.batch_size):
            # Sorted within the batch for memory-map locality. With pairs only (as in DFDC) and an
            # even batch size, a pair never straddles two batches.
            index = np.sort(order[start : start + config.batch_size])
            yield split.images[index], real_target[index], sample_weight[index], seeds[index]

    signature = (
        tf.TensorSpec((None, *split.images.shape[1:]), tf.uint8),
        tf.TensorSpec([None, 1], tf.float32),
        tf.TensorSpec([None], tf.float32),
        tf.TensorSpec([None, 2], tf.int32),
    )
    return (
        tf.data.Dataset.from_generator(generator, output_signature=signature)
        .unbatch()
        .map(lambda image, target, weight, seed: (augment(image, config.augment, seed), target, weight),
             num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(config.batch_size)
        .prefetch(2)
    )


def _learning_rate(config: TrainConfig, n_train: int):
    if config.lr_schedule == "constant":
        return config.learning_rate
    if config.lr_schedule == "cosine":
        steps_per_epoch = -(-n_train // config.batch_size)
        return keras.optimizers.schedules.CosineDecay(config.learning_rate, config.epochs * steps_per_epoch, alpha=0.01)
    raise ValueError(f"unknown learning-rate schedule {config.lr_schedule!r}: use constant or cosine")


def train(config: TrainConfig, resume: bool = False) -> dict:
    out = pathlib.Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    root = pathlib.Path(config.data)
    train_split = datasets.load_split(root, "train", limit=config.train_limit)
    val_split = datasets.load_split(root, "val", limit=config.val_limit)
    state_path, last_path = out / "state.json", out / "last.keras"

    if resume and state_path.exists() and last_path.exists():
        model = keras.models.load_model(last_path)
        state = json.loads(state_path.read_text())
        log.info("resuming %s after epoch %d (best AUC %.4f)", out, state["epochs_done"], state["best_auc"])
    else:
        model = archs.build(config.arch)
        if config.finetune_from:
            load_h5_weights(model, config.finetune_from)
        model.compile(optimizer=keras.optimizers.Adam(_learning_rate(config, len(train_split.fake))), loss="binary_crossentropy")
        state = {"epochs_done": 0, "best_auc": 0.0, "best_epoch": 0, "epochs_without_improvement": 0, "history": []}
        run = {
            "config": {**dataclasses.asdict(config), "augment": dataclasses.asdict(config.augment)},
            "data": {
                "labels_sha256": datasets.labels_sha256(root),
                "train": train_split.counts,
                "val": val_split.counts,
            },
            "code_version": code_version(),
        }
        (out / "run.json").write_text(json.dumps(run, indent=2))

    while state["epochs_done"] < config.epochs and state["epochs_without_improvement"] < config.patience:
        epoch = state["epochs_done"]
        began = time.time()
        history = model.fit(_train_dataset(train_split, config, epoch), epochs=1, verbose=0)
        trained = time.time()
        scores = Detector.from_keras(model).fake_probability(val_split.images, batch_size=64)
        auc = evaluation.roc_auc(val_split.fake, scores)
        record = {"epoch": epoch + 1, "loss": float(history.history["loss"][-1]), "val_auc": auc,
                  "train_seconds": round(trained - began, 1), "val_seconds": round(time.time() - trained, 1)}
        state["history"].append(record)
        state["epochs_done"] = epoch + 1
        if auc > state["best_auc"]:
            state.update(best_auc=auc, best_epoch=epoch + 1, epochs_without_improvement=0)
            save_h5_weights(model, out / "best.h5")
        else:
            state["epochs_without_improvement"] += 1
        model.save(out / "last.partial.keras")
        os.replace(out / "last.partial.keras", last_path)
        state_path.write_text(json.dumps(state, indent=2))
        log.info("epoch %d: loss %.4f, val AUC %.4f (best %.4f at %d), %.0f s", epoch + 1, record["loss"], auc,
                 state["best_auc"], state["best_epoch"], record["train_seconds"])
    return state
