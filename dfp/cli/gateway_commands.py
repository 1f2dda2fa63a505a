"""Commands that call the gateway: upload, detect, animate, faceswap, jobs, media."""

from __future__ import annotations

import functools
import pathlib
import sys

import click

from dfp.cli.output import Progress, emit, note


def gateway_options(command):
    """--server, --timeout, --json and --quiet, declared once for every gateway command."""

    # Defaults are read when the command runs, not when the CLI is imported.
    @click.option("--server", default=None, help="Gateway host:port [default: DFP_GATEWAY, else 127.0.0.1:50051].")
    @click.option("--timeout", "timeout_s", type=float, default=None,
                  help="Deadline of each call in seconds [default: DFP_TIMEOUT_S, else 60].")
    @click.option("--json", "as_json", is_flag=True, help="Print results as JSON lines on stdout.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
    @functools.wraps(command)
    def wrapper(server, timeout_s, as_json, quiet, **kwargs):
        from dfp.client import Client

        with Client(server, timeout_s) as client:
            return command(client, as_json=as_json, quiet=quiet, **kwargs)

    return wrapper


def _upload(client, path: pathlib.Path, quiet: bool, retention_days: float = 0):
    bar = Progress(path.stat().st_size, "B", f"upload {path.name}", quiet)
    try:
        return client.upload(path, retention_s=retention_days * 86400, progress=bar.update_to)
    finally:
        bar.close()


def _label(value: int) -> str:
    from dfp.v1 import detection_pb2

    return detection_pb2.Label.Name(value)


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path))
@click.option("--retention-days", type=float, default=0, help="Keep the files this long (0: the server's default).")
@gateway_options
def upload(client, files, retention_days, as_json, quiet):
    """Upload images or videos; prints each one's media name.

    \b
    Examples:
      dfp upload face.jpg clip.mp4
      dfp upload --retention-days 7 --json clip.mp4
    """
    for path in files:
        media = _upload(client, path, quiet, retention_days)
        emit(media, as_json, f"{media.name}\t{path}\t{media.content_type}\t{media.size_bytes} bytes")


@click.command()
@click.argument("target")
@click.option("--model", default="", help="Detector model name (default: the platform's default detector).")
@click.option("--version", "model_version", type=int, default=None, help="Model version (default: newest).")
@click.option("--threshold", type=float, default=0.0, help="Probability of fake from which a face is FAKE (default 0.5).")
@click.option("--no-face-crop", is_flag=True, help="Score the whole image as one face crop.")
@click.option("--fps", type=float, default=0.0, help="Video: frames per second to sample (default 2).")
@click.option("--frames", type=int, default=0, help="Video: sample this many frames evenly instead of a rate.")
@click.option("--detach", is_flag=True, help="Video: print the job name and return without waiting.")
@gateway_options
def detect(client, target, model, model_version, threshold, no_face_crop, fps, frames, detach, as_json, quiet):
    """Detect deepfakes in an image or video: a local FILE or a stored MEDIA name.

    A local image under 4 MiB is sent inline; a video is uploaded and scored as a job, whose progress
    is shown until it ends.

    \b
    Examples:
      dfp detect portrait.jpg
      dfp detect clip.mp4 --fps 5 --json
      dfp detect media/abcdefghijklmnopqrstuvwxyz
      dfp detect clip.mp4 --detach     # then: dfp jobs wait operations/...
    """
    from dfp import media as media_lib
    from dfp.v1 import common_pb2, detection_pb2, media_pb2

    options = detection_pb2.DetectionOptions(
        model=common_pb2.ModelSpec(name=model),
        threshold=threshold,
        face_crop=detection_pb2.FACE_CROP_OFF if no_face_crop else detection_pb2.FACE_CROP_UNSPECIFIED,
    )
    if model_version is not None:
        options.model.version.value = model_version
    path = pathlib.Path(target)
    if path.exists():
        with open(path, "rb") as f:
            kind = media_lib.sniff(f.read(64))
        if kind == media_lib.IMAGE and path.stat().st_size <= 4 * 1024 * 1024:
            result = client.detect_image(image_bytes=path.read_bytes(), options=options)
            _print_image_result(result, target, as_json)
            return
        name = _upload(client, path, quiet).name
        is_video = kind == media_lib.VIDEO
    elif target.startswith("media/"):
        name = target
        is_video = client.get_media(name).media_type == media_pb2.VIDEO
    else:
        raise click.BadParameter(f"{target!r} is neither a file nor a media name (media/...)", param_hint="TARGET")
    if not is_video:
        _print_image_result(client.detect_image(media=name, options=options), target, as_json)
        return
    sampling = detection_pb2.FrameSampling(frames_per_second=fps, frame_count=frames)
    operation = client.detect_video(name, options=options, sampling=sampling)
    if detach:
        emit({"operation": operation.name}, as_json, operation.name)
        note(f"follow it with: dfp jobs wait {operation.name}")
        return
    note(f"job {operation.name}")
    result = _wait(client, operation.name, quiet, detection_pb2.DetectVideoResponse)
    if as_json:
        emit(result, True)
        return
    verdict = result.verdict
    click.echo(
        f"{target}: {_label(verdict.label)} (max fake probability {verdict.max_fake_probability:.4f}, "
        f"mean {verdict.mean_fake_probability:.4f}, {verdict.faces_scored} faces in {result.frames_sampled} frames, "
        f"model {result.model.name} v{result.model.version})"
    )
    for track in result.tracks:
        click.echo(
            f"  track {track.track_id}: {_label(track.verdict.label)} max {track.verdict.max_fake_probability:.4f} "
            f"mean {track.verdict.mean_fake_probability:.4f} over {track.verdict.faces_scored} frames"
        )
    click.echo(f"  report: {result.result_uri}")


def _media_name(client, value: str, quiet: bool) -> str:
    """A stored media name as given, or the name of a local file once uploaded."""
    if value.startswith("media/"):
        return value
    path = pathlib.Path(value)
    if not path.is_file():
        raise click.BadParameter(f"{value!r} is neither a file nor a media name (media/...)")
    return _upload(client, path, quiet).name


@click.command()
@click.option("--source", required=True, help="Portrait image: a local file or a stored media name.")
@click.option("--driving", required=True, help="Driving video: a local file or a stored media name.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Download the result video here (default: leave it stored and print its name).")
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True,
              help="relative: movement relative to the first driving frame, scaled to the source; absolute: raw.")
@click.option("--model", default="", help="Animation model (default: the platform's).")
@click.option("--no-face-crop", is_flag=True, help="Use whole frames instead of face crops.")
@click.option("--return-crop", is_flag=True, help="Return the animated face crop, not the pasted-back portrait.")
@click.option("--best-frame", is_flag=True, help="Start from the driving frame whose pose best matches the source.")
@click.option("--no-visible-mark", is_flag=True, help="Leave out the visible label (the watermark and tags stay).")
@click.option("--plain", is_flag=True, help="The published FOMM path: the face redrawn at the model's frame size "
                                            "(default: the source's own pixels, moved at their resolution).")
@click.option("--detach", is_flag=True, help="Print the job name and return without waiting.")
@gateway_options
def animate(client, source, driving, out, mode, model, no_face_crop, return_crop, best_frame, no_visible_mark, plain,
            detach, as_json, quiet):
    """Animate a portrait by a driving video (First Order Motion Model) on the platform.

    Local files are uploaded first. The result is stored as a new media item, labelled as synthetic,
    and downloaded to --out when given.

    \b
    Examples:
      dfp animate --source portrait.jpg --driving talk.mp4 --out fake.mp4
      dfp animate --source media/abc... --driving media/def... --detach
    """
    from dfp.v1 import creation_pb2

    source_name = _media_name(client, source, quiet)
    driving_name = _media_name(client, driving, quiet)
    operation = client.animate_image(source_name, driving_name, mode=mode, model=model, no_face_crop=no_face_crop,
                                     return_crop=return_crop, best_initial_frame=best_frame,
                                     no_visible_mark=no_visible_mark, plain=plain)
    result = _follow_creation(client, operation, creation_pb2.AnimateImageResponse, out, detach, as_json, quiet)
    if result is not None:
        click.echo(f"{result.result_media}: {result.frames} frames at {result.frames_per_second:g} fps "
                   f"(model {result.model.name}){_saved(out)}")


@click.command()
@click.argument("target")
@click.option("--model", required=True, help="Face swap model in the registry (`dfp swap register`).")
@click.option("--version", type=click.IntRange(1), default=None, help="Model version (default: the published one).")
@click.option("--to", "to_identity", type=click.Choice(["a", "b"]), default="b", show_default=True,
              help="Identity whose face is put in.")
@click.option("--no-color-transfer", is_flag=True, help="Keep the decoder's colours.")
@click.option("--seamless", is_flag=True, help="Poisson-blend the swapped face into the original first.")
@click.option("--no-visible-mark", is_flag=True, help="Leave out the visible label (the watermark and tags stay).")
@click.option("--model-resolution", is_flag=True,
              help="Merge at the model's resolution (faster, softer) instead of the face's own, restored.")
@click.option("--no-skin-mask", is_flag=True,
              help="Blend the decoder's whole oval (hair and background included), not only the target's skin.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Download the result video here (default: leave it stored and print its name).")
@click.option("--detach", is_flag=True, help="Print the job name and return without waiting.")
@gateway_options
def faceswap(client, target, model, version, to_identity, no_color_transfer, seamless, no_visible_mark,
             model_resolution, no_skin_mask, out, detach, as_json, quiet):
    """Swap the face in every frame of a video with a trained face swap model, on the platform.

    TARGET is a local video (uploaded first) or a stored media name. The result keeps the target's
    audio, is labelled as synthetic, and is downloaded to --out when given.

    \b
    Examples:
      dfp faceswap take2.mp4 --model swap-ab --out swapped.mp4
      dfp faceswap media/abc... --model swap-ab --version 3 --to a --detach
    """
    from dfp.v1 import creation_pb2

    operation = client.swap_face(_media_name(client, target, quiet), model, version=version, to_identity=to_identity,
                                 no_color_transfer=no_color_transfer, seamless_clone=seamless,
                                 no_visible_mark=no_visible_mark, model_resolution=model_resolution,
                                 no_skin_mask=no_skin_mask)
    result = _follow_creation(client, operation, creation_pb2.SwapFaceResponse, out, detach, as_json, quiet)
    if result is not None:
        click.echo(f"{result.result_media}: {result.swapped_frames} of {result.frames} frames swapped "
                   f"(model {result.model.name} v{result.model.version}){_saved(out)}")


@click.command()
@click.argument("target")
@click.option("--model", type=click.Choice(["esrgan-x4", "srvgg-x4", "face"]), default="esrgan-x4", show_default=True,
              help="esrgan-x4: Real-ESRGAN x4plus (photographs); srvgg-x4: compact, much faster, softer; "
                   "face: faces restored, the rest through esrgan-x4.")
@click.option("--scale", type=click.IntRange(2, 4), default=4, show_default=True, help="Output scale.")
@click.option("--no-visible-mark", is_flag=True, help="Leave out the visible label (the watermark and tags stay).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=pathlib.Path), default=None,
              help="Download the result here (default: leave it stored and print its name).")
@click.option("--detach", is_flag=True, help="Print the job name and return without waiting.")
@gateway_options
def enhance(client, target, model, scale, no_visible_mark, out, detach, as_json, quiet):
    """Upscale an image or a video with super-resolution, on the platform.

    TARGET is a local file (uploaded first) or a stored media name. Images come back as PNG, videos
    as MP4 with the original audio and frame rate; results are labelled as machine-made.

    \b
    Examples:
      dfp enhance portrait.jpg --out portrait_x4.png
      dfp enhance clip.mp4 --model srvgg-x4 --scale 2 --out clip_x2.mp4
      dfp enhance old_photo.jpg --model face --out restored.png
    """
    from dfp.v1 import enhancement_pb2

    operation = client.enhance(_media_name(client, target, quiet), model=model, scale=scale,
                               no_visible_mark=no_visible_mark)
    result = _follow_creation(client, operation, enhancement_pb2.EnhanceResponse, out, detach, as_json, quiet)
    if result is not None:
        click.echo(f"{result.result_media}: {result.width}x{result.height}, {result.frames} frame(s) "
                   f"(model {result.model}, x{result.scale}){_saved(out)}")


def _follow_creation(client, operation, response_type, out, detach: bool, as_json: bool, quiet: bool):
    """Waits for a creation job and downloads its result to ``out``; returns the response for the
    caller to print, or None when it has already been printed (--detach, --json)."""
    if detach:
        emit({"operation": operation.name}, as_json, operation.name)
        note(f"follow it with: dfp jobs wait {operation.name}")
        return None
    note(f"job {operation.name}")
    result = _wait(client, operation.name, quiet, response_type)
    if out is not None:
        client.download(result.result_media, out)
    if as_json:
        emit(result, True)
        return None
    return result


def _saved(out) -> str:
    return f", saved to {out}" if out is not None else ""


def _print_image_result(result, target: str, as_json: bool) -> None:
    if as_json:
        emit(result, True)
        return
    verdict = result.verdict
    click.echo(f"{target}: {_label(verdict.label)} (max fake probability {verdict.max_fake_probability:.4f}, "
               f"{verdict.faces_scored} faces, model {result.model.name} v{result.model.version})")
    for face in result.faces:
        box = face.box
        click.echo(f"  face at ({box.x_min:.0f},{box.y_min:.0f})-({box.x_max:.0f},{box.y_max:.0f}): "
                   f"{_label(face.label)} {face.fake_probability:.4f}")


def _wait(client, name: str, quiet: bool, response_type):
    from dfp.client import job_metadata, operation_result

    bar = Progress(0, "frame", name.split("/")[-1][:8], quiet)

    def on_update(operation):
        metadata = job_metadata(operation)
        bar.update_to(metadata.items_done, metadata.items_total)

    try:
        operation = client.wait_operation(name, on_update=on_update)
    finally:
        bar.close()
    return operation_result(operation, response_type)


@click.group()
def jobs() -> None:
    """Long-running jobs (operations): list, get, wait, cancel, delete."""


@jobs.command("list")
@gateway_options
def jobs_list(client, as_json, quiet):
    """List the team's jobs."""
    from dfp.client import job_metadata
    from dfp.v1 import jobs_pb2

    for operation in client.list_operations():
        metadata = job_metadata(operation)
        emit(operation, as_json, f"{operation.name}\t{metadata.kind}\t{jobs_pb2.JobState.Name(metadata.state)}\t"
                                 f"{metadata.items_done}/{metadata.items_total}")


@jobs.command("get")
@click.argument("name")
@gateway_options
def jobs_get(client, name, as_json, quiet):
    """Show a job (operation) as JSON."""
    emit(client.get_operation(name), as_json)


@jobs.command("wait")
@click.argument("name")
@gateway_options
def jobs_wait(client, name, as_json, quiet):
    """Follow a job until it ends; exit 1 if it failed."""
    from dfp.client import job_metadata

    bar = Progress(0, "item", name.split("/")[-1][:8], quiet)
    try:
        operation = client.wait_operation(
            name, on_update=lambda op: bar.update_to(job_metadata(op).items_done, job_metadata(op).items_total)
        )
    finally:
        bar.close()
    emit(operation, as_json)
    if operation.HasField("error"):
        sys.exit(1)


@jobs.command("cancel")
@click.argument("name")
@gateway_options
def jobs_cancel(client, name, as_json, quiet):
    """Ask a job to stop."""
    client.cancel_operation(name)
    emit({"cancelled": name}, as_json, f"cancel requested for {name}")


@jobs.command("delete")
@click.argument("name")
@gateway_options
def jobs_delete(client, name, as_json, quiet):
    """Forget a finished job."""
    client.delete_operation(name)
    emit({"deleted": name}, as_json, f"deleted {name}")


@click.group()
def media() -> None:
    """Stored media: list, get, download, delete."""


@media.command("list")
@gateway_options
def media_list(client, as_json, quiet):
    """List the team's media."""
    for item in client.list_media():
        emit(item, as_json, f"{item.name}\t{item.content_type}\t{item.size_bytes}\t{item.display_name}")


@media.command("get")
@click.argument("name")
@gateway_options
def media_get(client, name, as_json, quiet):
    """Show a media file's description."""
    emit(client.get_media(name), as_json)


@media.command("download")
@click.argument("name")
@click.argument("out", type=click.Path(dir_okay=False, path_type=pathlib.Path))
@gateway_options
def media_download(client, name, out, as_json, quiet):
    """Download a media file to OUT (checked against its sha256)."""
    bar = Progress(0, "B", out.name, quiet)
    try:
        item = client.download(name, out, progress=bar.update_to)
    finally:
        bar.close()
    emit(item, as_json, f"{out}\t{item.size_bytes} bytes\tsha256 {item.sha256}")


@media.command("delete")
@click.argument("name")
@gateway_options
def media_delete(client, name, as_json, quiet):
    """Delete a media file."""
    client.delete_media(name)
    emit({"deleted": name}, as_json, f"deleted {name}")


def register(cli: click.Group) -> None:
    for command in (upload, detect, animate, faceswap, enhance, jobs, media):
        cli.add_command(command)
