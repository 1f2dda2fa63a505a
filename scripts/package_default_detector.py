"""Packages a training run as the platform's default detector, committed under models/detector/default/.

    python scripts/package_default_detector.py --run .run/train-resnet-paired --mirror-average

Writes weights.h5 (Keras-2 HDF5 layout), card.json (architecture, calibration fitted on validation,
metrics, data, training history, code version) and MODEL_CARD.md, and measures the original
Meso4_DF weights on the same validation split in the same run for comparison.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import dfp.faces  # noqa: E402,F401  before TensorFlow: see dfp.faces
from services.detector import evaluation, mirror, pretrained, scoring  # noqa: E402
from services.detector.training import dataset as datasets  # noqa: E402
from services.detector.training.card import calibrated_card  # noqa: E402
from services.detector.weights import save_h5_weights  # noqa: E402


def training_stages(training: dict) -> list[dict]:
    """The card's training, first stage first (a fine-tuned run lists the run it started from)."""
    stages = []
    while training:
        stages.insert(0, training)
        training = training.get("started_from")
    return stages


def render_stage(number: int, stage: dict) -> str:
    options = f"--arch {stage['arch']} --epochs {stage['epochs']} --learning-rate {stage['learning_rate']}"
    if stage.get("lr_schedule", "constant") != "constant":
        options += f" --lr-schedule {stage['lr_schedule']}"
    if stage.get("finetune_from"):
        options += f" --finetune-from <stage {number - 1}>/best.h5"
    # Runs recorded before the option existed batched faces in random order.
    batches = ("a fake beside the real face of its source video, augmented alike" if stage.get("pair_batches")
               else "faces in random order")
    return (f"{number}. `dfp detector train --data <dfdc-faces> {options} --out <stage {number}>` "
            f"(batch {stage['batch_size']}, seed {stage['seed']}, patience {stage['patience']}; batches: {batches}), "
            f"{len(stage['history'])} epochs run, best epoch {stage['best_epoch']}, code version `{stage['code_version']}`.")


def render_history(number: int, stage: dict) -> str:
    return "\n".join(
        f"| {number} | {h['epoch']} | {h['loss']:.4f} | {h['val_auc']:.4f} | {h['train_seconds']:.0f} |" for h in stage["history"]
    )


def render(card: dict) -> str:
    val, raw, original = card["metrics"]["val"], card["metrics"]["val_raw"], card["comparison"]["Meso4_DF"]
    single = card["metrics"]["val_raw_single_view"]
    mirrored = mirror.card_asks_for_it(card)
    inference = ("each face is scored as it is and mirrored left-right, the two probabilities\n  averaged "
                 "(`services/detector/mirror.py`, twice the network's cost), then calibrated" if mirrored
                 else "one pass of the network per face, then calibrated")
    stages = training_stages({**card["training"], "code_version": card["trained_with_code_version"]})
    steps = "\n".join(render_stage(number, stage) for number, stage in enumerate(stages, start=1))
    history = "\n".join(render_history(number, stage) for number, stage in enumerate(stages, start=1))
    return f"""# Model card: the platform's default detector

- **Architecture**: `{card['architecture']}` (services/detector/archs/{card['architecture']}_arch.py), input
  `image` float32 [N, 256, 256, 3] in [0, 1] (face crops made by `dfp.faces`), output probability of fake.
- **Inference**: {inference};
  the SavedModel exported from this card does the same in its signature.
- **Data**: `dfdc-faces` (Deepfake Detection Challenge face crops, research use under the DFDC terms):
  train {card['data']['train']['n_real']} real + {card['data']['train']['n_fake']} fake, validation
  {card['data']['val']['n_real']} real + {card['data']['val']['n_fake']} fake; splits grouped by source video;
  labels.csv sha256 `{card['data']['labels_sha256']}`.
- **Calibration**: Platt scaling fitted on validation, a = {card['calibration']['a']:.4f}, b =
  {card['calibration']['b']:.4f}; expected calibration error {card['metrics']['val_raw_ece']:.4f} raw,
  {card['metrics']['val_calibrated_ece']:.4f} calibrated, log loss {card['metrics']['val_raw_log_loss']:.4f} raw,
  {card['metrics']['val_calibrated_log_loss']:.4f} calibrated (fitted and measured on the same split, so optimistic).
  Platt scaling minimises the log loss, which the most confident mistakes dominate; where they are
  many it lowers the log loss while the binned calibration error can rise.

## Training

On this project's 2-core CPU machine, Adam, augmentation: flip, zoom, brightness, JPEG re-compression, blur;
the weights kept are those of the best validation AUC of the last stage.

{steps}

## Validation metrics (frame level; fake = positive; threshold 0.5 on the calibrated probability)

| model | AUC | EER | accuracy | precision | recall |
| --- | --- | --- | --- | --- | --- |
| this model, calibrated | {val['auc']:.4f} | {val['eer']:.4f} | {val['accuracy']:.4f} | {val['precision']:.4f} | {val['recall']:.4f} |
| this model, raw | {raw['auc']:.4f} | {raw['eer']:.4f} | {raw['accuracy']:.4f} | {raw['precision']:.4f} | {raw['recall']:.4f} |
| this model, raw, one view (no mirror) | {single['auc']:.4f} | {single['eer']:.4f} | {single['accuracy']:.4f} | {single['precision']:.4f} | {single['recall']:.4f} |
| original Meso4_DF (Afchar et al. 2018) | {original['auc']:.4f} | {original['eer']:.4f} | {original['accuracy']:.4f} | {original['precision']:.4f} | {original['recall']:.4f} |

Validation picked the best epoch and fitted the calibration, so these figures are optimistic for
unseen data; the held-out DFDC set outside this repository is the honest measure.

## Training history

| stage | epoch | loss | val AUC | train seconds |
| --- | --- | --- | --- | --- |
{history}

## Limits

Trained on DFDC face crops only (2019-2020 face swaps of paid actors); expect lower accuracy on other
creation methods, heavy compression, or faces cropped differently from `dfp.faces`.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, default=None)
    parser.add_argument("--out", type=pathlib.Path, default=pretrained.DEFAULT_DETECTOR_DIR)
    parser.add_argument("--mirror-average", action="store_true",
                        help="serve it averaging each face's score with its mirror image's")
    args = parser.parse_args()

    command = " ".join(["python", "scripts/package_default_detector.py", *sys.argv[1:]])
    network, platt, card = calibrated_card(args.run, args.data, command, args.mirror_average)
    root = pathlib.Path(card["data"]["root"])
    val = datasets.load_split(root, "val")
    original = scoring.Detector.from_h5(pretrained.default_weights("meso4"))
    original_score = original.fake_probability(val.images)
    card["comparison"] = {"Meso4_DF": evaluation.metrics(val.fake, original_score).as_dict()}
    card["name"] = pretrained.DEFAULT_DETECTOR_NAME
    card["data"].pop("root")
    args.out.mkdir(parents=True, exist_ok=True)
    save_h5_weights(network, args.out / "weights.h5")
    (args.out / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (args.out / "MODEL_CARD.md").write_text(render(card))
    print(json.dumps({"auc": card["metrics"]["val"]["auc"], "meso4_df_auc": card["comparison"]["Meso4_DF"]["auc"]}))


if __name__ == "__main__":
    main()
