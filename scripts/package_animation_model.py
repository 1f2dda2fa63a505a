"""Packages a FOMM training run as the platform's animation model, under models/creator/fomm-small-64/.

    python scripts/package_animation_model.py --run .run/fomm-small-64

Writes config.yaml and checkpoint.pth.tar (fp16 weights, published layout), card.json and
MODEL_CARD.md (held-out metrics of the fp16 weights against copying the source; with
--unseen-evaluation, the recipe's realism on a clip held out whole), and, outside the
repository (they are made from the shared clips), a sample: a portrait animated by the held-out last
fifth of a driving clip (animated.mp4) with a contact sheet of source, driving and result frames
(contact_sheet.png) in --samples (default .run/fomm-small-64-samples).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from dfp import faces  # noqa: E402,F401  (torch stack first: see dfp.faces)
from dfp import media, provenance  # noqa: E402
from dfp.config import shared_dir  # noqa: E402
from services.creator import checkpoints, default_model  # noqa: E402
from services.creator.pipelines import animate_media  # noqa: E402
from services.creator.pipelines.fomm_animation import FommAnimator  # noqa: E402
from services.creator.pipelines.full_resolution import FullResolutionAnimator  # noqa: E402
from services.creator.training.card import animation_card, export_release  # noqa: E402
from services.creator.training.clips import HOLDOUT_FRACTION  # noqa: E402

SAMPLE_SOURCE = "s0.jpg"
SAMPLE_DRIVING = "d12.mp4"


def render(card: dict) -> str:
    heldout = card["metrics"]["heldout"]
    rows = "\n".join(
        f"| {name} | {clip['frames']} | {clip['train_frames']} | {clip['heldout_frames']} | "
        f"{heldout['per_clip'][name]['l1']:.4f} | {heldout['per_clip'][name]['copy_source_l1']:.4f} |"
        for name, clip in card["data"]["clips"].items()
    )
    training = card["training"]
    params = training["train_params"]
    stills = params.get("still_pairs")
    still_data = (f"; and, for {stills['share']:.0%} of each batch, {stills['count']} face stills of "
                  f"`{stills['folder']}` (DFDC real faces), each paired with itself under a random affine + "
                  "thin-plate-spline warp, so that the keypoints follow people the clips do not show") if stills else ""
    return f"""# Model card: {card['model_name']}, the platform's animation model

- **Architecture**: {card['architecture']},
  the published FOMM networks (services/creator/archs/) at {card['frame_size']}x{card['frame_size']}, narrower than vox-256: {card['parameters']['generator']:,} generator and
  {card['parameters']['kp_detector']:,} keypoint-detector parameters; config `config.yaml` (published layout).
- **Weights**: `checkpoint.pth.tar`, the published checkpoint layout (`generator`, `kp_detector`), fp16
  (loads into float32 networks); the metrics below are measured on these fp16 weights.
- **Data**: the {len(card['data']['clips'])} talking-head clips of `{card['data']['folder']}` (LivePortrait example
  assets, MIT), each face-cropped with one stable box per clip; the last {HOLDOUT_FRACTION:.0%} of every clip's
  frames is held out from training{still_data}. Clip hashes are in card.json.
- **Training**: `{training['command']}`; {training['steps']} steps of batch {params['batch_size']}, Adam
  (lr {params['lr_generator']}, betas 0.5/0.999), on this project's 2-core CPU machine. Losses:
  {training['losses']}.
- **Code version**: trained with `{card['trained_with_code_version'] or 'the commits of 2026-11-26 (before run.json existed)'}`, packaged with `{card['code_version']}`.
- **Intended use**: producing synthetic test material for deepfake detectors. Outputs are labelled as
  synthetic (visible mark and file tags). At {card['frame_size']}x{card['frame_size']} it is a small model: faces come out
  soft; the published vox-256 checkpoint (load it with `--config services/creator/configs/vox-256.yaml
  --checkpoint vox-cpk.pth.tar`) gives far sharper results.

## Held-out reconstruction (the paper's protocol)

Source = the clip's first frame, driving = each held-out frame of the same clip, keypoints as
detected; L1 = mean absolute error per pixel in [0, 1]; lower is better. The baseline copies the
source frame unchanged.

| | L1 |
|---|---|
| this model | **{heldout['l1']:.4f}** |
| copy the source | {heldout['copy_source_l1']:.4f} |

Over {heldout['heldout_frames']} held-out frames. Per clip:

| clip | frames | train | held out | L1 | copy-the-source L1 |
|---|---|---|---|---|---|
{rows}

On nearly still clips (where copying the source scores under 0.015) copying is better: at
{card['frame_size']}x{card['frame_size']} the model's rebuilt frames are softer than an unchanged one. It wins wherever the head moves.

{unseen_section(card)}## Sample

`python scripts/package_animation_model.py --run RUN` also writes, outside the repository (it is
made from the shared clips), `{SAMPLE_SOURCE}` animated by the held-out frames of `{SAMPLE_DRIVING}`
(relative mode, pasted back) and a contact sheet of the source crop, driving crops and results.
"""


def unseen_section(card: dict) -> str:
    """The realism of the same recipe on a clip held out whole, when the card has it."""
    unseen = card["metrics"].get("unseen_clip")
    if not unseen:
        return ""
    rows = "\n".join(
        f"| {row['path'].replace('_', ' ')} | {row['sharpness_ratio']:.2f} | {row['motion_correlation']:.2f} | "
        f"{row['identity_distance']:.3f} | {row['flicker_ratio']:.2f} | {row['faces_found']:.2f} |"
        for row in unseen["pairs"]
    )
    pair = unseen["pairs"][0]
    return f"""## Motion on a clip it never saw

The same recipe trained with `{unseen['held_out_clip']}` held out whole (`{unseen['command']}`), then
`{pair['source']}` animated by all of `{pair['driving']}`: `{unseen['evaluate_command']}`. Sharpness is the
made face's Laplacian variance over the source face's (1.0 = as sharp), motion the correlation of
the five landmarks' motion with the driving clip's, identity the landmark geometry against the
source's (the driver's own: {pair['driving_identity_distance']:.3f}), flicker the frame-to-frame change over the driving clip's.

| path | sharpness | motion | identity | flicker | faces found |
|---|---|---|---|---|---|
{rows}

{unseen['note']}

"""


def sample(out: pathlib.Path, data: pathlib.Path, samples: pathlib.Path) -> None:
    from PIL import Image

    samples.mkdir(parents=True, exist_ok=True)
    driving_path = data / SAMPLE_DRIVING
    frames = list(media.iter_video_frames(driving_path))
    heldout = frames[int(round(len(frames) * (1 - HOLDOUT_FRACTION))):]
    info = media.video_stream_info(driving_path)
    source_rgb = media.decode_image(shared_dir() / "data" / "video" / "source" / SAMPLE_SOURCE, 50_000_000)
    # The sample is what `dfp creator animate` makes by default: the full-resolution path.
    animator = FullResolutionAnimator(FommAnimator(checkpoints.load_model(out / "config.yaml", out / "checkpoint.pth.tar")),
                                      default_model.load_face_restorer())
    crops: list[np.ndarray] = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = pathlib.Path(tmp) / "heldout.mp4"
        writer = media.VideoWriter(clip, info.frames_per_second)
        for frame in heldout:
            writer.write(frame)
        writer.close()
        options = animate_media.AnimationOptions(batch_size=16)
        result = animate_media.animate_video(
            animator, source_rgb, clip, samples / "animated.mp4", options,
            metadata=provenance.synthetic_metadata(default_model.NAME),
            on_batch=lambda state, batch: crops.extend(animate_media.to_uint8(batch.prediction)),
        )
        left, top, side = result.driving_box
        driving_crops = [f[top : top + side, left : left + side] for f in heldout]
    size = 128
    picks = np.linspace(0, len(crops) - 1, 6).astype(int)
    s_left, s_top, s_side = result.source_box
    source_crop = source_rgb[s_top : s_top + s_side, s_left : s_left + s_side]

    def tile(rgb):
        return np.asarray(Image.fromarray(rgb).resize((size, size), Image.BICUBIC))

    blank = np.full((size, size, 3), 255, np.uint8)
    top_row = np.concatenate([tile(source_crop)] + [tile(driving_crops[i]) for i in picks], axis=1)
    bottom_row = np.concatenate([blank] + [tile(crops[i]) for i in picks], axis=1)
    Image.fromarray(np.concatenate([top_row, bottom_row], axis=0)).save(samples / "contact_sheet.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=pathlib.Path, required=True)
    parser.add_argument("--data", type=pathlib.Path, default=shared_dir() / "data" / "video" / "driving")
    parser.add_argument("--out", type=pathlib.Path, default=default_model.FOLDER)
    parser.add_argument("--command", default="", help="The training command, when the run has no run.json.")
    parser.add_argument("--unseen-evaluation", type=pathlib.Path,
                        help="JSON: the `dfp creator evaluate --json` report of the same recipe trained with a clip "
                             "held out whole, with held_out_clip, command, evaluate_command and note added")
    parser.add_argument("--samples", type=pathlib.Path, default=REPO / ".run" / "fomm-small-64-samples")
    args = parser.parse_args()
    export_release(args.run, args.out)
    card = animation_card(args.run, args.out, args.data, args.command)
    if args.unseen_evaluation:
        card["metrics"]["unseen_clip"] = json.loads(args.unseen_evaluation.read_text())
    (args.out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    (args.out / "MODEL_CARD.md").write_text(render(card))
    sample(args.out, args.data, args.samples)
    heldout = card["metrics"]["heldout"]
    print(f"{args.out}: held-out L1 {heldout['l1']:.4f} vs copy-the-source {heldout['copy_source_l1']:.4f}")


if __name__ == "__main__":
    main()
