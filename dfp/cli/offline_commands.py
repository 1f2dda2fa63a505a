"""Commands that work without any server: `dfp detector ...` and `dfp models ...`."""

from __future__ import annotations

import pathlib
import sys

import click

from dfp.cli.output import emit, note


@click.group()
def detector() -> None:
    """Detector models, offline: score images, export to TF Serving's layout."""


@detector.command("score")
@click.argument("images", nargs=-1, required=True)
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4"]), default=None,
              help="Architecture of --weights (.h5); guessed from the file name when omitted.")
@click.option("--weights", type=click.Path(exists=True, path_type=pathlib.Path), default=None,
              help="A Keras .h5 weight file or a SavedModel folder (default: the platform's default detector).")
@click.option("--no-face-crop", is_flag=True, help="Feed each image as the face crop (resized only if not the model's size).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout, in input order.")
def score(images, arch, weights, no_face_crop, as_json):
    """Print each image's probability of being fake.

    With face crop on (the default), faces are found and each is scored; an image's probability is
    the highest over its faces, null when it has none. Exits 1 at the end if any input was unreadable.

    \b
    Examples:
      dfp detector score photo.jpg
      dfp detector score --no-face-crop --weights Meso4_DF.h5 --json crops/*.jpg
    """
    from dfp import faces as faces_lib  # before TensorFlow: see dfp.faces
    from dfp import media as media_lib
    from dfp.config import LimitSettings
    from services.detector import pretrained, scoring

    if weights is None:
        weights = pretrained.default_weights(arch or "meso4")
    model = scoring.Detector.load(weights, arch)
    face_detector = None if no_face_crop else faces_lib.FaceDetector()
    max_pixels = LimitSettings.from_env().max_image_pixels
    failed = False
    for path in images:
        try:
            rgb = media_lib.decode_image(path, max_pixels)
        except (OSError, media_lib.InvalidMedia) as exc:
            failed = True
            emit({"path": path, "error": str(exc)}, as_json, f"{path}: error: {exc}")
            continue
        results = scoring.score_image(rgb, model, face_detector)
        probability = max((r.fake_probability for r in results), default=None)
        record = {
            "path": path,
            "fake_probability": probability,
            "faces": [
                {"box": list(r.box), "detection_confidence": r.detection_confidence, "fake_probability": r.fake_probability}
                for r in results
            ],
            "model": model.description,
        }
        shown = "no face" if probability is None else f"{probability:.6f}"
        emit(record, as_json, f"{path}\t{shown}\t{len(results)} face(s)")
    if failed:
        sys.exit(1)


@detector.command("export")
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4"]), required=True)
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="Keras .h5 weights (default: the platform's default weights for --arch).")
@click.option("--base-path", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="TF Serving model base path; the model goes to BASE/NAME/VERSION.")
@click.option("--name", default=None, help="Model name (default: the architecture).")
@click.option("--version", type=int, default=None, help="Version number (default: one past the newest).")
def export(arch, weights, base_path, name, version):
    """Export weights as a SavedModel version that TF Serving (or `dfp`'s model server) picks up.

    \b
    Example:
      dfp detector export --arch meso4 --base-path /models
    """
    from services.detector import archs, pretrained
    from services.detector.export import export_version
    from services.detector.weights import load_h5_weights

    weights = weights or pretrained.default_weights(arch)
    model = archs.build(arch)
    load_h5_weights(model, weights)
    out = export_version(model, base_path, name or arch, version)
    emit({"saved_model": str(out)}, False, str(out))


@click.group()
def models() -> None:
    """Published model weights: fetch and check them."""


@models.command("pull")
@click.argument("family", type=click.Choice(["mesonet"]))
@click.option("--base-url", default=None, help="Fetch from this address instead of the published one.")
@click.option("--offline", is_flag=True, help="Do not use the network; take the files from DFP_SHARED_DIR.")
@click.option("--json", "as_json", is_flag=True)
def pull(family, base_url, offline, as_json):
    """Download published weights, checking each file's pinned SHA-256.

    When the download fails, the files are taken from the shared data folder (DFP_SHARED_DIR) if their
    hashes match. Files land in DFP_CACHE_DIR (default ~/.cache/dfp).

    \b
    Example:
      dfp models pull mesonet
    """
    import logging

    from services.detector import pretrained

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    for path, origin in pretrained.pull(base_url or pretrained.MESONET_BASE_URL, offline=offline):
        emit({"path": str(path), "source": origin}, as_json, f"{path}\t{origin}")
    note("all files match their pinned SHA-256")


def register(cli: click.Group) -> None:
    for command in (detector, models):
        cli.add_command(command)
