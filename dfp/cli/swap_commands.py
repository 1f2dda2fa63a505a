"""`dfp swap ...`: face swap with the DeepFaceLab-style autoencoder, offline (no server)."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import click

from dfp.cli.output import Progress, emit


@click.group()
def swap() -> None:
    """Face swap: extract face sets, train a pair, measure it."""


@swap.command("extract")
@click.argument("source", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Face set folder to write (faces/*.png and faceset.json).")
@click.option("--consent-by", required=True, help="Who attests that the person consented.")
@click.option("--consent", "statement", required=True, help="The consent statement (what was agreed, where it is kept).")
@click.option("--size", type=click.IntRange(32, 512), default=128, show_default=True, help="Side of the aligned faces.")
@click.option("--coverage", type=click.FloatRange(1.0, 3.0), default=1.6, show_default=True,
              help="How much of the head the crop takes in (1: the inner face).")
@click.option("--every", type=click.IntRange(1), default=1, show_default=True, help="Use every N-th frame.")
@click.option("--json", "as_json", is_flag=True)
def extract_command(source, out, consent_by, statement, size, coverage, every, as_json):
    """Extract the aligned faces of one person from a video or a folder of images.

    \b
    Examples:
      dfp swap extract actor_a.mp4 --out facesets/a --consent-by "studio" --consent "release form #12"
    """
    from dfp import faces  # noqa: F401  (torch stack first: see dfp.faces)
    from services.creator.pipelines import faceset

    manifest = faceset.extract(source, out, faceset.Consent(consent_by, statement), size=size, coverage=coverage,
                               every=every)
    summary = {"out": str(out), "faces": len(manifest["faces"]), "dropped": manifest["dropped"]}
    emit(summary, as_json, f"{out}: {summary['faces']} faces (dropped {manifest['dropped']['blurry']} blurry, "
                           f"{manifest['dropped']['duplicate']} near-duplicates)")


def _faceset_store():
    from dfp.cli.offline_commands import store_from_env
    from services.creator.pipelines.faceset_store import FaceSetStore

    return FaceSetStore(store_from_env())


@swap.command("push")
@click.argument("folder", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path))
@click.option("--name", required=True, help="Name of the face set in the object store.")
@click.option("--json", "as_json", is_flag=True)
def push_command(folder, name, as_json):
    """Upload a face set (faces, transforms, consent record) to the object store; DFP_S3_* settings.

    \b
    Example:
      dfp swap push facesets/a --name actor-a
    """
    manifest = _faceset_store().push(folder, name)
    emit({"name": name, "faces": len(manifest["faces"])}, as_json, f"facesets/{name}: {len(manifest['faces'])} faces")


@swap.command("pull")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="New folder to write the face set into.")
@click.option("--json", "as_json", is_flag=True)
def pull_command(name, out, as_json):
    """Download a face set from the object store, for training.

    \b
    Example:
      dfp swap pull actor-a --out facesets/a && dfp swap train --a facesets/a ...
    """
    manifest = _faceset_store().pull(name, out)
    emit({"out": str(out), "faces": len(manifest["faces"])}, as_json, f"{out}: {len(manifest['faces'])} faces")


@swap.command("train")
@click.option("--a", "faceset_a", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="Face set of identity a (the faces to replace).")
@click.option("--b", "faceset_b", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="Face set of identity b (the face to put in).")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Run folder (checkpoint, preview.png, log.jsonl, eval.json); resumes if it has a checkpoint.")
@click.option("--steps", type=click.IntRange(1), required=True, help="Train to this many steps in all.")
@click.option("--resolution", type=click.Choice(["64", "96", "128", "160", "192", "256"]), default="64", show_default=True)
@click.option("--archi", type=click.Choice(["df", "liae"]), default="df", show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 256), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=100, show_default=True,
              help="Save the checkpoint and preview.png every N steps.")
@click.option("--device", default=None, help="cpu, cuda, cuda:1... (default: cuda when there is a GPU).")
@click.option("--json", "as_json", is_flag=True)
def train_command(faceset_a, faceset_b, out, steps, resolution, archi, batch_size, seed, checkpoint_every, device,
                  as_json):
    """Train the autoencoder on two face sets; both must carry a consent attestation.

    The last fifth of each video face set (by frame) is held out; at the end each decoder's SSIM and
    L1 on its own held-out faces are printed.

    \b
    Examples:
      dfp swap train --a facesets/a --b facesets/b --out runs/ab --steps 5000
    """
    import sys

    from dfp import faces  # noqa: F401
    from services.creator.training.swap_train import train_swap

    import torch

    bar = Progress(steps, "step", "training")
    try:
        metrics = train_swap(faceset_a, faceset_b, out, steps, resolution=int(resolution), archi=archi,
                             batch_size=batch_size, seed=seed, command=" ".join(["dfp", *sys.argv[1:]]),
                             checkpoint_every=checkpoint_every, progress=bar.update_to,
                             device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    finally:
        bar.close()
    text = ", ".join(f"decoder {k}: SSIM {v['ssim']:.3f} L1 {v['l1']:.4f}" for k, v in metrics["heldout"].items())
    emit(metrics, as_json, f"{metrics['steps']} steps; held-out {text}")


@swap.command("merge")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="A `dfp swap train` run folder.")
@click.option("--target", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), required=True,
              help="Video whose faces are replaced.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=pathlib.Path), required=True, help="Result video (.mp4).")
@click.option("--to", "to_identity", type=click.Choice(["a", "b"]), default="b", show_default=True,
              help="Identity whose face is put in.")
@click.option("--no-color-transfer", is_flag=True, help="Keep the decoder's colours.")
@click.option("--seamless", is_flag=True, help="Poisson-blend the swapped face into the original first.")
@click.option("--model-resolution", is_flag=True,
              help="Merge at the model's resolution (the face pasted scaled up, unrestored), not the face's own.")
@click.option("--no-restore", is_flag=True, help="Full resolution without the face restorer (decoded faces only upscaled).")
@click.option("--no-smoothing", is_flag=True, help="Align every frame by its own landmarks, unsmoothed.")
@click.option("--no-skin-mask", is_flag=True,
              help="Blend the decoder's whole oval (hair and background included), not only the target's skin.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def merge_command(run_dir, target, out, to_identity, no_color_transfer, seamless, model_resolution, no_restore,
                  no_smoothing, no_skin_mask, device, as_json):
    """Swap the face in every frame of a video, keeping its audio; labelled as synthetic.

    \b
    Examples:
      dfp swap merge --run runs/ab --target actor_a_take2.mp4 --out swapped.mp4
    """
    from dfp import faces  # noqa: F401
    from dfp import provenance
    from services.creator import default_model
    from services.creator.pipelines import swap_media
    from services.creator.swap_model import load_run

    model, settings = load_run(run_dir)
    coverage = settings.get("coverage", 1.6)
    options = swap_media.MergeOptions(to_identity=to_identity, coverage=coverage, color_transfer=not no_color_transfer,
                                      seamless=seamless, full_resolution=not model_resolution,
                                      smooth_alignment=not no_smoothing, skin_mask=not no_skin_mask)
    restore = None if model_resolution or no_restore else default_model.load_face_restorer(device)
    bar = Progress(0, "frame", "swapping")
    try:
        result = swap_media.swap_video(swap_media.FaceSwapper(model, device), target, out, options,
                                       metadata=provenance.synthetic_metadata(f"faceswap:{run_dir.name}"),
                                       progress=bar.update_to, restore=restore)
    finally:
        bar.close()
    emit(dataclasses.asdict(result), as_json, f"wrote {out}: {result.swapped_frames} of {result.frames} frames swapped")


@swap.command("evaluate")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="A `dfp swap train` run folder.")
@click.option("--target", "targets", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="Target clip (repeat). A clip a face set was extracted from is measured on the part training "
                   "held out, swapped to the other identity; default: both face sets' clips, from --data.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="Folder holding the face sets' clips (default: DFP_SHARED_DIR/data/video/driving).")
@click.option("--max-frames", type=click.IntRange(0), default=0, help="Frames per target (0: all held out).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Write a contact sheet (target frames, both merges' faces) here.")
@click.option("--no-restore", is_flag=True, help="Full resolution without the face restorer.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(run_dir, targets, data, max_frames, sheet, no_restore, device, as_json):
    """Measure a trained pair's swaps on held-out target frames: the full-resolution merge (the
    default) and the merge at the model's resolution in the same run.

    Each is scored for sharpness (Laplacian variance of the made face over the target face it
    replaced, 1.0 = as sharp), motion fidelity (correlation of the five landmarks' motion with the
    target's), identity (landmark geometry against the identity put in), flicker (frame-to-frame
    change over the target's) and the share of frames with a face.

    \b
    Examples:
      dfp swap evaluate --run runs/ab --sheet swap-sheet.jpg --json
      dfp swap evaluate --run runs/ab --target take3.mp4 --max-frames 60

    The report is also written to RUN/realism.json, which `dfp swap register` puts in the card.
    """
    from dfp import faces  # noqa: F401
    from dfp import media
    from dfp.config import shared_dir
    from services.creator import default_model, evaluation
    from services.creator.pipelines import swap_media
    from services.creator.checkpoints import read_checkpoint
    from services.creator.swap_model import CHECKPOINT, REALISM, load_run
    from services.creator.training.swap_train import HOLDOUT_FRACTION

    model, settings = load_run(run_dir)
    data = data or shared_dir() / "data" / "video" / "driving"
    sources = {identity: info["source"] for identity, info in settings["facesets"].items()}
    other = {"a": "b", "b": "a"}

    def still_of(identity: str):
        clip = data / sources[identity]
        if not clip.exists():
            raise click.UsageError(f"{clip} is missing: identity {identity}'s clip is needed for the identity "
                                   "measure; give --data")
        return next(media.iter_video_frames(clip))

    chosen = list(targets) or [data / sources["a"], data / sources["b"]]
    plan = []
    for clip in chosen:
        replaced = next((identity for identity, name in sources.items() if name == clip.name), None)
        to_identity = other[replaced] if replaced else "b"
        plan.append(evaluation.SwapTarget(clip, to_identity, still_of(to_identity),
                                          start_fraction=1 - HOLDOUT_FRACTION if replaced else 0.0))
    restore = None if no_restore else default_model.load_face_restorer(device)
    report = evaluation.evaluate_swap(swap_media.FaceSwapper(model, device), plan, coverage=settings.get("coverage", 1.6),
                                      restore=restore, max_frames=max_frames, sheet=sheet)
    report["run"] = str(run_dir)
    report["steps"] = int(read_checkpoint(run_dir / CHECKPOINT)["step"])
    # Kept beside the run: `dfp swap register` puts it in the model card when it measured these weights.
    (run_dir / REALISM).write_text(json.dumps(report, indent=2))
    lines = [f"{path}: " + ", ".join(f"{key} {evaluation.format_measure(value)}" for key, value in row.items())
             for path, row in report["summary"].items()]
    emit(report, as_json, "\n".join(lines))


@swap.command("register")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="A finished `dfp swap train` run folder.")
@click.option("--name", required=True, help="Registry model name, for example `swap-d6-d9`.")
@click.option("--publish", is_flag=True, help="Also make it the served version (the creator picks it up).")
@click.option("--json", "as_json", is_flag=True)
def register_command(run_dir, name, publish, as_json):
    """Store a trained pair (weights, settings, card) in the model registry as a face_swap model.

    The card carries both face sets' sources and consent records, the held-out metrics and the
    training command. The creator service serves the published version of every face swap model,
    which the gateway's SwapFace RPC then uses by name. Uses DFP_S3_* settings.

    \b
    Example:
      dfp swap register --run runs/ab --name swap-ab --publish
    """
    import sys
    import tempfile

    from dfp.cli.offline_commands import registry_from_env
    from services.creator.swap_model import export_release
    from services.creator.training.swap_card import swap_card

    with tempfile.TemporaryDirectory() as tmp:
        release = export_release(run_dir, pathlib.Path(tmp) / "release")
        card = swap_card(run_dir, release, " ".join(["dfp", *sys.argv[1:]]))
        registry = registry_from_env()
        version = registry.register(name, "face_swap", release, card)
    if publish:
        registry.publish(name, version)
    heldout = card["metrics"]["heldout"]
    text = ", ".join(f"decoder {k}: SSIM {v['ssim']:.3f}" for k, v in heldout.items())
    emit({"name": name, "version": version, "published": publish, "heldout": heldout}, as_json,
         f"{name} v{version}: held-out {text}" + (" (published)" if publish else ""))


def register(cli: click.Group) -> None:
    cli.add_command(swap)
