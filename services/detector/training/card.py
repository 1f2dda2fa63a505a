"""From a training run to a servable detector: calibrate on validation, measure, write the card."""

from __future__ import annotations

import json
import pathlib

import keras

from services.detector import archs, calibration, evaluation, mirror
from services.detector.training import dataset as datasets
from services.detector.scoring import Detector
from dfp.provenance import code_version
from services.detector.weights import load_h5_weights


def calibrated_card(run_dir: pathlib.Path, data_root: pathlib.Path | None, command: str,
                    mirror_average: bool = False) -> tuple[keras.Model, calibration.Platt, dict]:
    """The run's best network, its Platt calibration fitted on validation, and its model card.

    With `mirror_average` the card says to serve the network averaging each face with its mirror image
    (`mirror.as_served`); the calibration and the metrics are those of the averaged score, and
    `val_raw_single_view` measures the network alone for comparison. `command` is what produced the
    card (recorded with the training command from the run).
    """
    run = json.loads((run_dir / "run.json").read_text())
    state = json.loads((run_dir / "state.json").read_text())
    network = archs.build(run["config"]["arch"])
    load_h5_weights(network, run_dir / "best.h5")
    root = data_root or pathlib.Path(run["config"]["data"])
    val = datasets.load_split(root, "val")
    single_view = Detector.from_keras(network).fake_probability(val.images, batch_size=64)
    if mirror_average:
        raw = Detector.from_keras(mirror.mirror_averaged(network)).fake_probability(val.images, batch_size=64)
    else:
        raw = single_view
    platt = calibration.fit_platt(val.fake, raw)
    calibrated = platt.apply(raw)
    card = {
        "architecture": run["config"]["arch"],
        "metrics": {
            "val": evaluation.metrics(val.fake, calibrated).as_dict(),
            "val_raw": evaluation.metrics(val.fake, raw).as_dict(),
            "val_raw_ece": calibration.expected_calibration_error(val.fake, raw),
            "val_calibrated_ece": calibration.expected_calibration_error(val.fake, calibrated),
            "val_raw_log_loss": calibration.log_loss(val.fake, raw),
            "val_calibrated_log_loss": calibration.log_loss(val.fake, calibrated),
            "val_raw_single_view": evaluation.metrics(val.fake, single_view).as_dict(),
        },
        "calibration": platt.as_dict(),
        "inference": {"mirror_average": mirror_average},
        "data": {**run["data"], "root": str(root)},
        "training": {**run["config"], "best_epoch": state["best_epoch"], "history": state["history"]},
        "command": command,
        "code_version": code_version(),
        "trained_with_code_version": run.get("code_version"),
    }
    base = _base_run(run["config"].get("finetune_from"))
    if base is not None:
        card["training"]["started_from"] = base
    return network, platt, card


def _base_run(weights: str | None) -> dict | None:
    """The training run whose best weights this one started from, when those weights are a run's
    best.h5, so that a card lists every stage of its training and not only the last."""
    if not weights or pathlib.Path(weights).name != "best.h5":
        return None
    folder = pathlib.Path(weights).parent
    if not ((folder / "run.json").exists() and (folder / "state.json").exists()):
        return None
    run = json.loads((folder / "run.json").read_text())
    state = json.loads((folder / "state.json").read_text())
    return {**run["config"], "best_epoch": state["best_epoch"], "history": state["history"],
            "code_version": run.get("code_version"), "started_from": _base_run(run["config"].get("finetune_from"))}
