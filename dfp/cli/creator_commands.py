"""`dfp creator ...`: creation models, offline (no server)."""

from __future__ import annotations

import pathlib

import click

from dfp.cli.output import Progress, emit


@click.group()
def creator() -> None:
    """Creation models, offline: animate a portrait with FOMM."""


def _load_source(path: pathlib.Path, max_pixels: int):
    import numpy as np

    from dfp import media

    if path.suffix.lower() == ".npy":
        array = np.load(path, allow_pickle=False)
        if array.ndim != 3 or array.shape[2] != 3:
            raise click.UsageError(f"--source {path}: a .npy source must be HxWx3 float in [0,1], got {array.shape}")
        return array.astype(np.float32), True
    return media.decode_image(path, max_pixels), False


class _ArrayRecorder:
    """Collects the per-frame outputs that --save-arrays writes."""

    def __init__(self):
        self.parts: dict[str, list] = {}
        self.kp_source = None

    def __call__(self, state, batch) -> None:
        if self.kp_source is None:
            self.kp_source = {key: value[0].detach().cpu().numpy() for key, value in state.kp_source.items()}
        for name in ("prediction", "deformed", "occlusion_map", "kp_driving_value", "kp_driving_jacobian"):
            value = getattr(batch, name)
            if value is not None:
                self.parts.setdefault(name, []).append(value)

    def save(self, path: pathlib.Path) -> None:
        import numpy as np

        arrays = {name: np.concatenate(parts).astype(np.float32) for name, parts in self.parts.items()}
        arrays["kp_source_value"] = self.kp_source["value"].astype(np.float32)
        if "jacobian" in self.kp_source:
            arrays["kp_source_jacobian"] = self.kp_source["jacobian"].astype(np.float32)
        np.savez(path, **arrays)


@creator.command("animate")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              default=None, help="FOMM config YAML in the published layout (default: the platform's own model's).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="Checkpoint in the published layout ({'generator', 'kp_detector'}); default: the platform's own model.")
@click.option("--source", "source_path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              required=True, help="Portrait image, or a .npy float32 HxWx3 array in [0,1] used as given.")
@click.option("--driving", "driving_path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              required=True, help="Driving video, or a .npy float32 TxHxWx3 array in [0,1] used as given.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=pathlib.Path), required=True,
              help="Result video (.mp4), labelled as synthetic.")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True,
              help="relative: movement relative to the initial driving frame, scaled to the source; absolute: raw keypoints.")
@click.option("--save-arrays", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Also write the raw outputs as float32 arrays to this .npz (prediction, deformed, occlusion_map, keypoints).")
@click.option("--batch-size", type=click.IntRange(0, 256), default=0,
              help="Driving frames per forward pass; 0 (default): 16 on a GPU, 1 on the CPU, where batching gains "
                   "little and frame-by-frame output is bit-identical to the published demo's.")
@click.option("--best-frame", is_flag=True, help="Use the driving frame whose face pose best matches the source as the initial frame.")
@click.option("--no-crop", is_flag=True, help="Do not look for faces: the whole source and driving frames are resized to the model.")
@click.option("--return-crop", is_flag=True, help="Write the animated face crop instead of pasting it back into the source.")
@click.option("--plain", is_flag=True,
              help="The published FOMM path: the face is redrawn by the generator at the model's frame size "
                   "(default for media: the source's own pixels, warped at its resolution, see ARCHITECTURE.md).")
@click.option("--no-restore", is_flag=True,
              help="Full resolution only: upscale the generator's pixels in occluded regions without the face restorer.")
@click.option("--device", default="cpu", show_default=True, help="torch device, e.g. cuda:0.")
def animate(config_path, checkpoint, source_path, driving_path, out_path, mode, save_arrays, batch_size, best_frame,
            no_crop, return_crop, plain, no_restore, device):
    """Animate a portrait by the motion of a driving video (First Order Motion Model).

    Media inputs are face-cropped (one stable box for the clip); the model predicts the motion at its
    frame size and the source crop is warped by it at its own resolution (up to 512 px), with the
    generator's restored output where the source cannot be seen, then pasted back. The driving
    clip's audio and frame rate are kept. `--plain` runs the published path instead. `.npy` inputs
    are used exactly as given (the published path), and the video is written at 25 frames/s.

    \b
    Examples:
      dfp creator animate --source portrait.jpg --driving talk.mp4 --out fake.mp4
      dfp creator animate --config vox-256.yaml --checkpoint vox-cpk.pth.tar \\
          --source s.npy --driving d.npy --out out.mp4 --mode absolute --save-arrays out.npz
    """
    import numpy as np

    from dfp import faces as faces_lib  # noqa: F401  (torch stack before anything else: see dfp.faces)
    from dfp import media, provenance
    from dfp.config import LimitSettings
    from services.creator import checkpoints, default_model
    from services.creator.pipelines import animate_media
    from services.creator.pipelines.fomm_animation import FommAnimator, batched
    from services.creator.pipelines.full_resolution import FullResolutionAnimator

    if (config_path is None) != (checkpoint is None):
        raise click.UsageError("give --config and --checkpoint together, or neither for the platform's own model")
    if config_path is None:
        model = default_model.load()
        generator_name = default_model.NAME
    else:
        model = checkpoints.load_model(config_path, checkpoint)
        generator_name = model.config.get("model_name", checkpoint.name)
    animator = FommAnimator(model, device)
    if batch_size == 0:
        batch_size = 16 if animator.device.type == "cuda" else 1
    full_resolution = not plain and driving_path.suffix.lower() != ".npy"
    limits = LimitSettings.from_env()
    source, source_is_array = _load_source(source_path, limits.max_image_pixels)
    driving_is_array = driving_path.suffix.lower() == ".npy"
    if source_is_array != driving_is_array:
        raise click.UsageError("--source and --driving must both be .npy arrays, or both be media files")
    recorder = _ArrayRecorder() if save_arrays else None
    metadata = provenance.synthetic_metadata(generator_name)

    if driving_is_array:
        driving = np.load(driving_path, mmap_mode="r", allow_pickle=False)
        if driving.ndim != 4 or driving.shape[3] != 3 or len(driving) == 0:
            raise click.UsageError(f"--driving {driving_path}: a .npy driving video must be TxHxWx3, got {driving.shape}")
        state = animator.prepare(source, np.asarray(driving[0], np.float32), mode)
        writer = media.VideoWriter(out_path, 25.0, metadata=metadata)
        try:
            for frames in batched((np.asarray(f, np.float32) for f in driving), batch_size):
                batch = animator.animate_batch(state, frames)
                if recorder:
                    recorder(state, batch)
                for frame in animate_media.to_uint8(batch.prediction):
                    writer.write(provenance.mark_frame(frame, provenance.watermark_payload(metadata)))
            writer.close()
        except BaseException:
            writer.abort()
            raise
        frames_done = len(driving)
    else:
        options = animate_media.AnimationOptions(mode=mode, crop_faces=not no_crop, paste_back=not return_crop,
                                                 best_initial_frame=best_frame, batch_size=batch_size,
                                                 full_resolution=full_resolution)
        if full_resolution:
            animator = FullResolutionAnimator(animator, None if no_restore else default_model.load_face_restorer(device))
        bar = Progress(0, "frame", "animating")
        try:
            result = animate_media.animate_video(animator, source, driving_path, out_path, options, metadata=metadata,
                                                 on_batch=recorder, progress=bar.update_to)
        finally:
            bar.close()
        frames_done = result.frames
    if recorder:
        recorder.save(save_arrays)
    emit({"out": str(out_path), "frames": frames_done, "arrays": str(save_arrays) if save_arrays else None},
         False, f"wrote {out_path} ({frames_done} frames)")


@creator.command("train")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              required=True, help="FOMM config with train_params (see services/creator/configs/dfp-fomm-small-64.yaml).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="Folder of talking-head .mp4 clips (default: DFP_SHARED_DIR/data/video/driving).")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Run folder: checkpoint.pth.tar (published layout), log.jsonl, eval.json. Resumes if it has a checkpoint.")
@click.option("--steps", type=click.IntRange(1), default=None, help="Train to this many steps (default: the config's num_steps).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(0), default=0, help="torch CPU threads (0: torch's default).")
@click.option("--json", "as_json", is_flag=True, help="Print the held-out evaluation as JSON.")
def train_command(config_path, data, out, steps, seed, threads, as_json):
    """Train FOMM on talking-head clips; the last 20% of every clip is held out.

    Pairs of frames from one clip are source and driving; losses are an image-pyramid L1 and the
    published keypoint and jacobian equivariance. At the end the held-out reconstruction L1
    (source = first frame) is reported against copying the source.

    \b
    Examples:
      dfp creator train --config services/creator/configs/dfp-fomm-small-64.yaml --out runs/fomm
    """
    from dfp import faces  # noqa: F401  (torch stack first: see dfp.faces)
    from dfp.config import shared_dir
    from services.creator.training.train import train

    import sys

    metrics = train(config_path, data or shared_dir() / "data" / "video" / "driving", out, steps, seed, threads,
                    command=" ".join(["dfp", *sys.argv[1:]]))
    emit(metrics, as_json, f"held-out L1 {metrics['l1']:.4f} vs copy-the-source {metrics['copy_source_l1']:.4f} "
                           f"over {metrics['heldout_frames']} frames, {metrics['steps']} steps")


@creator.command("evaluate")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="FOMM config (default: the platform's own model's).")
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="Checkpoint in the published layout (default: the platform's own model).")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="Folder of talking-head .mp4 clips (default: DFP_SHARED_DIR/data/video/driving).")
@click.option("--source", "sources", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="Realism: a portrait still to animate (repeat for several). Without it, the held-out reconstruction L1.")
@click.option("--driving", "clips", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              help="Realism: a driving clip (repeat for several); default: the clips the model holds out whole.")
@click.option("--max-frames", type=click.IntRange(0), default=0, help="Realism: frames per clip (0: all).")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Realism: write a contact sheet (driving frames, full-resolution and plain results) here.")
@click.option("--no-restore", is_flag=True, help="Realism: full resolution without the face restorer.")
@click.option("--device", default="cpu", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def evaluate_command(config_path, checkpoint, data, sources, clips, max_frames, sheet, no_restore, device, as_json):
    """Measure an animation model: realism of its fakes, or its held-out reconstruction.

    With --source: every still animated by every driving clip, full resolution and plain in the
    same run, each scored for sharpness (Laplacian variance over the source face's, 1.0 = as sharp),
    motion fidelity (correlation of the five landmarks' motion with the driving clip's), identity
    (landmark geometry against the source's, beside the driver's), flicker (frame-to-frame change
    over the driving clip's) and the share of frames with a face.

    Without --source: the paper's held-out reconstruction L1 against copying the source.

    \b
    Examples:
      dfp creator evaluate --source s0.jpg --driving d12.mp4 --sheet sheet.jpg --json
      dfp creator evaluate --config run/config.yaml --checkpoint run/checkpoint.pth.tar --json
    """
    from dfp import faces  # noqa: F401  (torch stack first: see dfp.faces)
    from dfp.config import LimitSettings, shared_dir
    from services.creator import checkpoints, default_model
    from services.creator.training.clips import load_clips, unseen_clips
    from services.creator.training.evaluate import reconstruction_l1

    if (config_path is None) != (checkpoint is None):
        raise click.UsageError("give --config and --checkpoint together, or neither for the platform's own model")
    model = default_model.load() if config_path is None else checkpoints.load_model(config_path, checkpoint)
    data = data or shared_dir() / "data" / "video" / "driving"
    if not sources:
        if clips:
            raise click.UsageError("--driving is for the realism measures: give --source too")
        metrics = reconstruction_l1(model, load_clips(data, model.frame_size, unseen_clips(model.config)))
        emit(metrics, as_json, f"held-out L1 {metrics['l1']:.4f} vs copy-the-source {metrics['copy_source_l1']:.4f} "
                               f"over {metrics['heldout_frames']} frames")
        return

    from services.creator import evaluation
    from services.creator.pipelines.fomm_animation import FommAnimator
    from services.creator.pipelines.full_resolution import FullResolutionAnimator

    clips = list(clips) or [data / f"{name}.mp4" for name in unseen_clips(model.config)]
    if not clips:
        raise click.UsageError("this model holds out no clip whole: name the driving clips with --driving")
    animator = FommAnimator(model, device)
    full = FullResolutionAnimator(animator, None if no_restore else default_model.load_face_restorer(device))
    report = evaluation.evaluate_animation(lambda path: full if path == "full_resolution" else animator,
                                           list(sources), clips, max_frames=max_frames, sheet=sheet,
                                           max_image_pixels=LimitSettings.from_env().max_image_pixels)
    report["model"] = model.config.get("model_name", "")
    report["unseen_clips"] = list(unseen_clips(model.config))
    fmt = evaluation.format_measure
    lines = []
    for path, summary in report["summary"].items():
        lines.append(f"{path}: sharpness {fmt(summary['sharpness_ratio'])}, motion "
                     f"{fmt(summary['motion_correlation'])}, identity "
                     f"{fmt(summary['identity_distance'])} (driver "
                     f"{fmt(summary['driving_identity_distance'])}), flicker "
                     f"{fmt(summary['flicker_ratio'])}, faces found {fmt(summary['faces_found'])} "
                     f"over {summary['pairs']} pairs")
    emit(report, as_json, "\n".join(lines))


@creator.command("register")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="A `dfp creator train` output folder.")
@click.option("--name", required=True, help="Registry model name, for example `fomm-small`.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="Clips to measure on (default: DFP_SHARED_DIR/data/video/driving).")
@click.option("--publish", is_flag=True, help="Also make it the served version.")
@click.option("--json", "as_json", is_flag=True)
def register_command(run_dir, name, data, publish, as_json):
    """Store a trained animation model (fp16 weights, config, card) in the model registry.

    The card records the held-out metrics of the stored weights, the clips (frame counts and
    hashes), the training command and the code version. Uses DFP_S3_* settings.

    \b
    Example:
      dfp creator register --run runs/fomm --name fomm-small --publish
    """
    import sys
    import tempfile

    from dfp import faces  # noqa: F401
    from dfp.cli.offline_commands import registry_from_env
    from dfp.config import shared_dir
    from services.creator.training.card import animation_card, export_release

    with tempfile.TemporaryDirectory() as tmp:
        release = export_release(run_dir, pathlib.Path(tmp) / "release")
        card = animation_card(run_dir, release, data or shared_dir() / "data" / "video" / "driving",
                              " ".join(["dfp", *sys.argv[1:]]))
        registry = registry_from_env()
        version = registry.register(name, "animation", release, card)
    if publish:
        registry.publish(name, version)
    heldout = card["metrics"]["heldout"]
    emit({"name": name, "version": version, "published": publish, "l1": heldout["l1"],
          "copy_source_l1": heldout["copy_source_l1"]}, as_json,
         f"{name} v{version}: held-out L1 {heldout['l1']:.4f} vs copy-the-source {heldout['copy_source_l1']:.4f}"
         + (" (published)" if publish else ""))


def register(cli: click.Group) -> None:
    cli.add_command(creator)
