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
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4", "resnet"]), default=None,
              help="Architecture of --weights (.h5); guessed from the file name when omitted.")
@click.option("--weights", type=click.Path(exists=True, path_type=pathlib.Path), default=None,
              help="A Keras .h5 weight file or a SavedModel folder. Default: the platform's default detector "
                   "(calibrated), or with --arch alone that architecture's published MesoNet weights.")
@click.option("--no-face-crop", is_flag=True, help="Feed each image as the face crop (resized only if not the model's size).")
@click.option("--video-frames", type=click.IntRange(1, 1000), default=24, show_default=True,
              help="Videos: frames sampled evenly over the video.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per input on stdout, in input order.")
def score(images, arch, weights, no_face_crop, video_frames, as_json):
    """Print each image's (or video's) probability of being fake.

    With face crop on (the default), faces are found and each is scored; an image's probability is
    the highest over its faces, null when it has none. A video's is the mean over sampled frames of
    each frame's highest (with the maximum beside it). Exits 1 at the end if any input was unreadable.

    \b
    Examples:
      dfp detector score photo.jpg
      dfp detector score --no-face-crop --weights Meso4_DF.h5 --json crops/*.jpg
    """
    from dfp import faces as faces_lib  # before TensorFlow: see dfp.faces
    from dfp import media as media_lib
    from dfp.config import LimitSettings
    from services.detector import pretrained, scoring

    if weights is None and arch is None:
        model = scoring.Detector.platform_default()
    else:
        model = scoring.Detector.load(weights or pretrained.default_weights(arch), arch)
    face_detector = None if no_face_crop else faces_lib.FaceDetector()
    max_pixels = LimitSettings.from_env().max_image_pixels
    failed = False
    for path in images:
        if _is_video(path):
            if face_detector is None:
                raise click.UsageError(f"{path} is a video: videos are scored on their faces, drop --no-face-crop")
            try:
                video = scoring.score_video(path, model, face_detector, frame_count=video_frames)
            except (OSError, media_lib.InvalidMedia) as exc:
                failed = True
                emit({"path": path, "error": str(exc)}, as_json, f"{path}: error: {exc}")
                continue
            shown = "no face" if video.max_fake_probability is None else (
                f"{video.mean_fake_probability:.6f} mean, {video.max_fake_probability:.6f} max")
            emit({"path": path, "video": True, "fake_probability": video.mean_fake_probability,
                  "max_fake_probability": video.max_fake_probability, "frames_sampled": video.frames_sampled,
                  "frames_with_faces": video.frames_with_faces, "model": model.description}, as_json,
                 f"{path}\t{shown}\t{video.frames_with_faces}/{video.frames_sampled} frames with faces")
            continue
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


def _is_video(path: str) -> bool:
    from dfp import media as media_lib

    try:
        with open(path, "rb") as handle:
            return media_lib.sniff(handle.read(64)) == media_lib.VIDEO
    except OSError:
        return False


@detector.command("export")
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4", "resnet"]), default=None,
              help="Architecture (default: the platform's default detector, exported with its calibration).")
@click.option("--weights", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path), default=None,
              help="Keras .h5 weights (default: the published MesoNet weights for --arch).")
@click.option("--base-path", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="TF Serving model base path; the model goes to BASE/NAME/VERSION.")
@click.option("--name", default=None, help="Model name (default: the architecture).")
@click.option("--version", type=int, default=None, help="Version number (default: one past the newest).")
def export(arch, weights, base_path, name, version):
    """Export weights as a SavedModel version that TF Serving (or `dfp`'s model server) picks up.

    \b
    Examples:
      dfp detector export --base-path /models                 # the default detector, as model `detector`
      dfp detector export --arch meso4 --base-path /models    # Meso4 with the published DF weights
    """
    import dfp.faces  # noqa: F401  before TensorFlow: see dfp.faces
    from services.detector import pretrained, scoring
    from services.detector.calibration import Platt
    from services.detector.export import export_version

    calibration = None
    if arch is None and weights is None:
        default = pretrained.default_detector()
        arch, weights = default.arch, default.weights
        calibration = Platt(default.calibration["a"], default.calibration["b"])
        name = name or pretrained.DEFAULT_DETECTOR_NAME
    elif arch is None:
        arch = scoring.arch_for_weights(weights)
        if arch is None:
            raise click.UsageError(f"cannot tell the architecture of {weights}; pass --arch")
    model = scoring.load_network(weights or pretrained.default_weights(arch), arch)
    out = export_version(model, base_path, name or arch, version, calibration)
    emit({"saved_model": str(out)}, False, str(out))


@detector.command("train")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True,
              help="Folder with labels.csv (path, label, split, source_video) and the images.")
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4", "resnet"]), required=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="Run folder: best.h5, last.keras, state.json, run.json.")
@click.option("--epochs", type=int, default=20, show_default=True)
@click.option("--batch-size", type=int, default=32, show_default=True)
@click.option("--learning-rate", type=float, default=1e-3, show_default=True)
@click.option("--lr-schedule", type=click.Choice(["constant", "cosine"]), default="constant", show_default=True,
              help="cosine: decay to 1% of --learning-rate over --epochs (a resumed run keeps its first --epochs).")
@click.option("--pair-batches/--no-pair-batches", default=True, show_default=True,
              help="Batch each fake with the real face of its source video, both augmented alike.")
@click.option("--patience", type=int, default=4, show_default=True, help="Epochs without a better val AUC before stopping.")
@click.option("--seed", type=int, default=1234, show_default=True)
@click.option("--finetune-from", type=click.Path(exists=True, dir_okay=False, resolve_path=True), default=None,
              help="Start from these .h5 weights (for example the original MesoNet ones).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last finished epoch.")
@click.option("--train-limit", type=int, default=0, help="Use a class-balanced subset of this many train faces.")
@click.option("--val-limit", type=int, default=0, help="Likewise for validation.")
@click.option("--json", "as_json", is_flag=True)
def train_command(data, arch, out, epochs, batch_size, learning_rate, lr_schedule, pair_batches, patience, seed,
                  finetune_from, resume, train_limit, val_limit, as_json):
    """Train a detector; the weights with the best validation AUC go to OUT/best.h5.

    \b
    Examples:
      dfp detector train --data ../shared/data/dfdc-faces --arch resnet --out runs/resnet
      dfp detector train --data ... --arch meso4 --finetune-from Meso4_DF.h5 --out runs/meso4-ft
      dfp detector train --data ... --arch resnet --out runs/resnet --resume
      dfp detector train --data ... --arch resnet --finetune-from runs/resnet/best.h5 --learning-rate 1e-3 \\
          --lr-schedule cosine --epochs 16 --out runs/resnet-ft
    """
    import logging

    import dfp.faces  # noqa: F401  before TensorFlow: see dfp.faces
    from services.detector.training.train import TrainConfig, train

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config = TrainConfig(
        data=str(data), arch=arch, out=str(out), epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        lr_schedule=lr_schedule, pair_batches=pair_batches, patience=patience, seed=seed, finetune_from=finetune_from,
        train_limit=train_limit, val_limit=val_limit,
    )
    state = train(config, resume=resume)
    summary = {"best_auc": state["best_auc"], "best_epoch": state["best_epoch"], "epochs_done": state["epochs_done"],
               "weights": str(out / "best.h5")}
    emit(summary, as_json, f"best val AUC {state['best_auc']:.4f} at epoch {state['best_epoch']}: {out / 'best.h5'}")


@detector.command("evaluate")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), required=True)
@click.option("--weights", "weights_list", multiple=True, required=True,
              type=click.Path(exists=True, path_type=pathlib.Path),
              help="A .h5 file or SavedModel folder; repeat to compare models in one run.")
@click.option("--arch", type=click.Choice(["meso4", "mesoinception4", "resnet"]), default=None,
              help="Architecture of .h5 weights whose file name does not tell it.")
@click.option("--split", default="val", show_default=True)
@click.option("--threshold", type=float, default=0.5, show_default=True, help="Probability of fake called FAKE.")
@click.option("--limit", type=int, default=0, help="Evaluate on a class-balanced subset of this many faces.")
@click.option("--out", type=click.Path(file_okay=False, path_type=pathlib.Path), default=None,
              help="Write roc.png, score histograms and a contact sheet of the worst mistakes here.")
@click.option("--mirror-average/--no-mirror-average", default=None,
              help="Average each face's score with its mirror image's (default: as the model card beside .h5 "
                   "weights says; a SavedModel does what it was exported to do).")
@click.option("--json", "as_json", is_flag=True, help="One JSON line of metrics per model.")
def evaluate_command(data, weights_list, arch, split, threshold, limit, out, mirror_average, as_json):
    """Measure detectors on a labelled split: ROC AUC (fake = positive), EER, accuracy, precision, recall.

    \b
    Example:
      dfp detector evaluate --data ../shared/data/dfdc-faces --weights Meso4_DF.h5 --weights runs/resnet/best.h5 --out eval/
    """
    import dfp.faces  # noqa: F401  before TensorFlow: see dfp.faces
    from services.detector import evaluation, scoring
    from services.detector.training import dataset as datasets

    faces = datasets.load_split(data, split, limit=limit)
    curves = {}
    for weights in weights_list:
        try:
            detector = scoring.Detector.load(weights, arch, mirror_average)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
        score = detector.fake_probability(faces.images)
        result = evaluation.metrics(faces.fake, score, threshold).as_dict()
        videos = [s.source_video for s in faces.samples]
        if len(set(zip(videos, faces.fake.tolist()))) < len(videos):
            mean_score, _, video_fake = evaluation.video_scores(videos, score, faces.fake)
            result["video_auc"] = evaluation.roc_auc(video_fake, mean_score)
        record = {"model": detector.description, "split": split, **result}
        curves[detector.description] = (faces.fake, score)
        if out is not None:
            name = evaluation.slug(detector.description)
            record["mistakes"] = str(evaluation.write_mistakes_sheet(out / f"mistakes-{name}.png", faces.images, faces.fake, score))
        emit(record, as_json, f"{detector.description} on {split}: AUC {result['auc']:.4f}, EER {result['eer']:.4f}, "
                              f"accuracy {result['accuracy']:.4f}, precision {result['precision']:.4f}, "
                              f"recall {result['recall']:.4f} at {threshold} "
                              f"({result['n_real']} real, {result['n_fake']} fake)")
    if out is not None:
        for path in evaluation.write_plots(out, curves):
            note(f"wrote {path}")


@detector.command("register")
@click.option("--run", "run_dir", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="A `dfp detector train` output folder (best.h5, run.json).")
@click.option("--default", "platform_default", is_flag=True,
              help="Register the platform's committed default detector, as its card says, instead of a run.")
@click.option("--name", required=True, help="Registry model name, for example `detector-resnet`.")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=pathlib.Path), default=None,
              help="Dataset to calibrate and measure on (default: the run's own data).")
@click.option("--publish", is_flag=True, help="Also make it the served version.")
@click.option("--mirror-average", is_flag=True,
              help="Serve it averaging each face's score with its mirror image's (twice the inference cost).")
@click.option("--json", "as_json", is_flag=True)
def register_command(run_dir, platform_default, name, data, publish, mirror_average, as_json):
    """Calibrate a trained detector on validation and store it in the model registry.

    The probability is Platt-scaled on the validation split; the SavedModel registered carries that
    calibration (and, with --mirror-average, the averaging) in its serving signature. The card records
    the metrics (raw and calibrated), the data (split counts, labels hash), the training command and
    the code version. With --default, the committed default detector is registered with its own card
    and calibration (a fresh cluster's first detector). Uses DFP_S3_* settings.

    \b
    Examples:
      dfp detector register --run runs/resnet --name detector-resnet --publish
      dfp detector register --default --name detector --publish
    """
    import tempfile

    import dfp.faces  # noqa: F401  before TensorFlow: see dfp.faces
    from services.detector import mirror, pretrained, scoring
    from services.detector.calibration import Platt
    from services.detector.export import export_saved_model
    from services.detector.training.card import calibrated_card

    import sys as sys_lib

    if (run_dir is None) == (not platform_default):
        raise click.UsageError("give either --run or --default")
    if platform_default:
        if data is not None or mirror_average:
            raise click.UsageError("--default registers the committed model as its card says: drop --data and --mirror-average")
        default = pretrained.default_detector()
        network = scoring.load_network(default.weights, default.arch, mirror_average=False)
        platt = Platt(default.calibration["a"], default.calibration["b"])
        card = {**default.card, "registered_from": "models/detector/default"}
    else:
        network, platt, card = calibrated_card(run_dir, data, " ".join(["dfp", *sys_lib.argv[1:]]), mirror_average)
    with tempfile.TemporaryDirectory() as tmp:
        saved = export_saved_model(mirror.as_served(network, card), pathlib.Path(tmp) / "saved_model", platt)
        registry = registry_from_env()
        version = registry.register(name, "detector", saved, card)
    if publish:
        registry.publish(name, version)
    emit({"name": name, "version": version, "published": publish, "auc": card["metrics"]["val"]["auc"],
          "calibration": platt.as_dict()}, as_json,
         f"{name} v{version}: val AUC {card['metrics']['val']['auc']:.4f}, calibration a={platt.a:.3f} b={platt.b:.3f}"
         + (" (published)" if publish else ""))


@click.group()
def models() -> None:
    """Model weights and the model registry: pull published weights, register, publish, roll back."""


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


@models.command("list")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True)
def registry_list(name, as_json):
    """List registered models, or the versions of NAME with their metrics (DFP_S3_* settings)."""
    registry = registry_from_env()
    if name is None:
        for model_name in registry.models():
            model = registry.model(model_name)
            emit(model, as_json, f"{model_name}\t{model['kind']}\tserving v{model['serving_version']}")
        return
    serving = registry.model(name)["serving_version"]
    for version in registry.version_numbers(name):
        card = registry.card(name, version)
        auc = card.get("metrics", {}).get("val", {}).get("auc")
        emit(card, as_json, f"{name}\tv{version}{' (serving)' if version == serving else ''}\t{card['created']}"
                            + (f"\tval AUC {auc:.4f}" if auc is not None else ""))


@models.command("register")
@click.argument("name")
@click.argument("path", type=click.Path(exists=True, path_type=pathlib.Path))
@click.option("--kind", type=click.Choice(["detector", "animation", "face_swap", "super_resolution", "restoration"]),
              required=True)
@click.option("--card", "card_file", type=click.Path(exists=True, dir_okay=False, path_type=pathlib.Path),
              default=None, help="A JSON file with the model card (metrics, data, command).")
def registry_register(name, path, kind, card_file):
    """Store a model file or folder as a new version of NAME."""
    import json as json_lib

    card = json_lib.loads(card_file.read_text()) if card_file else {}
    version = registry_from_env().register(name, kind, path, card)
    emit({"name": name, "version": version}, False, f"{name} v{version}")


@models.command("publish")
@click.argument("name")
@click.argument("version", type=int)
def registry_publish(name, version):
    """Serve VERSION of NAME (model servers pick it up through `dfp models sync`)."""
    registry_from_env().publish(name, version)
    emit({"name": name, "serving_version": version}, False, f"{name}: serving v{version}")


@models.command("rollback")
@click.argument("name")
@click.option("--to", "to_version", type=int, default=None, help="Version to serve (default: the one served before).")
def registry_rollback(name, to_version):
    """Serve the previously served version of NAME again."""
    version = registry_from_env().rollback(name, to_version)
    emit({"name": name, "serving_version": version}, False, f"{name}: serving v{version}")


@models.command("sync")
@click.option("--base-path", type=click.Path(file_okay=False, path_type=pathlib.Path), required=True,
              help="The TF Serving model base path to keep in step with the registry.")
@click.option("--watch", type=float, default=0.0, help="Keep syncing every this many seconds.")
def registry_sync(base_path, watch):
    """Make a TF Serving base path hold exactly the served version of every detector model."""
    import time

    from dfp.registry import sync_serving

    registry = registry_from_env()
    while True:
        for name, version in sync_serving(registry, base_path).items():
            note(f"{name}: v{version} in {base_path / name}")
        if watch <= 0:
            return
        time.sleep(watch)


def store_from_env():
    from dfp.config import StorageSettings
    from dfp.storage import ObjectStore

    store = ObjectStore(StorageSettings.from_env())
    store.ensure_buckets()
    return store


def registry_from_env():
    from dfp.registry import ModelRegistry

    return ModelRegistry(store_from_env())
