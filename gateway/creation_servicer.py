"""dfp.v1.CreationService, and the jobs its RPCs queue: animate_image and swap_face."""

from __future__ import annotations

import functools
import pathlib
import tempfile

from google.rpc import code_pb2

from dfp import faces as faces_lib
from dfp import media as media_lib
from dfp import provenance
from dfp.config import LimitSettings
from dfp.registry import ModelRegistry, RegistryError
from dfp.v1 import common_pb2, creation_pb2, creation_pb2_grpc
from gateway.creator_client import CreatorClient, TorchServeAnimator, TorchServeSwapper
from gateway.errors import InvalidArgument, ResourceNotFound, abort_on_error
from gateway.jobs import JobContext, JobFailed, JobKind, JobRunner, JobStore
from gateway.media_store import MediaStore
from gateway.results import store_result
from gateway.auth import TeamResolver
from services.creator import default_model
from services.creator.pipelines import animate_media, swap_media

ANIMATE_IMAGE = "animate_image"
SWAP_FACE = "swap_face"
IDENTITIES = ("a", "b")
_MODES = {
    creation_pb2.ANIMATION_MODE_UNSPECIFIED: "relative",
    creation_pb2.RELATIVE: "relative",
    creation_pb2.ABSOLUTE: "absolute",
}


def _mode(request: creation_pb2.AnimateImageRequest) -> str:
    if request.mode not in _MODES:
        raise InvalidArgument(f"mode {request.mode} is not a known AnimationMode")
    return _MODES[request.mode]


def _model(request: creation_pb2.AnimateImageRequest, default_model: str) -> tuple[str, str]:
    name = request.model.name or default_model
    version = str(request.model.version.value) if request.model.HasField("version") else ""
    if request.model.HasField("version") and request.model.version.value <= 0:
        raise InvalidArgument("model.version must be positive when set")
    return name, version


def swap_model_card(registry: ModelRegistry, spec: common_pb2.ModelSpec) -> dict:
    """The registry card of the face swap version a request names (its published one when unset)."""
    if not spec.name:
        raise InvalidArgument("model.name must name a face swap model in the registry (see `dfp swap register`)")
    try:
        model = registry.model(spec.name)
    except RegistryError as exc:
        raise ResourceNotFound(f"{exc}; list models with `dfp models list`") from None
    if model["kind"] != "face_swap":
        raise InvalidArgument(f"model {spec.name} is a {model['kind']} model, not a face swap model")
    if spec.HasField("version"):
        if spec.version.value <= 0:
            raise InvalidArgument("model.version must be positive when set")
        version = spec.version.value
    elif model["serving_version"] is None:
        raise ResourceNotFound(f"face swap model {spec.name} has no published version; publish one first")
    else:
        version = model["serving_version"]
    try:
        return registry.card(spec.name, version)
    except RegistryError as exc:
        raise ResourceNotFound(str(exc)) from None


class CreationServicer(creation_pb2_grpc.CreationServiceServicer):
    def __init__(self, media: MediaStore, jobs: JobStore, runner: JobRunner, default_model: str, team_of: TeamResolver,
                 registry: ModelRegistry):
        self._media = media
        self._jobs = jobs
        self._runner = runner
        self._default_model = default_model
        self._team_of = team_of
        self._registry = registry

    @abort_on_error
    def AnimateImage(self, request, context):
        team = self._team_of(context)
        _mode(request)
        _model(request, self._default_model)
        if not request.source_media or not request.driving_media:
            raise InvalidArgument("set source_media (a stored image) and driving_media (a stored video)")
        if request.best_initial_frame and request.no_face_crop:
            raise InvalidArgument("best_initial_frame matches face landmarks; it needs face cropping (no_face_crop off)")
        source = self._media.get(team, request.source_media)
        if source.media_type != media_lib.IMAGE:
            raise InvalidArgument(f"source_media {request.source_media} is a video; the source must be an image")
        driving = self._media.get(team, request.driving_media)
        if driving.media_type != media_lib.VIDEO:
            raise InvalidArgument(f"driving_media {request.driving_media} is an image; the driving media must be a video")
        job = self._jobs.create(team, ANIMATE_IMAGE, request, target=request.source_media, request_id=request.request_id)
        self._runner.wake()
        return job.get_operation()

    @abort_on_error
    def SwapFace(self, request, context):
        team = self._team_of(context)
        if request.to_identity not in ("", *IDENTITIES):
            raise InvalidArgument(f"to_identity must be \"a\" or \"b\", got {request.to_identity!r}")
        if not request.target_media:
            raise InvalidArgument("set target_media (a stored video)")
        card = swap_model_card(self._registry, request.model)
        target = self._media.get(team, request.target_media)
        if target.media_type != media_lib.VIDEO:
            raise InvalidArgument(f"target_media {request.target_media} is an image; face swap works on videos")
        # The job swaps with the version resolved now, even if another is published while it waits.
        queued = creation_pb2.SwapFaceRequest()
        queued.CopyFrom(request)
        queued.model.version.value = card["version"]
        job = self._jobs.create(team, SWAP_FACE, queued, target=request.target_media, request_id=request.request_id)
        self._runner.wake()
        return job.get_operation()


def animate_image_job(creator: CreatorClient, media: MediaStore, face_detector: faces_lib.FaceDetector,
                      limits: LimitSettings, default_model: str, batch_size: int, input_size: int) -> JobKind:
    """The animate_image job: fetch both media, animate through TorchServe, store the labelled video."""

    def fetch(team: str, name: str):
        try:
            return media.get(team, name)
        except ResourceNotFound as exc:
            raise JobFailed(code_pb2.NOT_FOUND, f"{exc}; it was deleted or expired after the job was queued") from None

    def run(job: JobContext) -> creation_pb2.AnimateImageResponse:
        request: creation_pb2.AnimateImageRequest = job.request
        model, version = _model(request, default_model)
        source_record = fetch(job.team, request.source_media)
        driving_record = fetch(job.team, request.driving_media)
        job.progress(0, driving_record.frame_count, force=True)
        options = animate_media.AnimationOptions(
            mode=_mode(request), crop_faces=not request.no_face_crop, paste_back=not request.return_crop,
            best_initial_frame=request.best_initial_frame, batch_size=batch_size,
            visible_mark=not request.no_visible_mark, full_resolution=not request.plain,
        )
        animator = TorchServeAnimator(creator, model, version, input_size,
                                      full_resolution=options.full_resolution and options.crop_faces)
        with tempfile.TemporaryDirectory(prefix="dfp-animate-") as workdir:
            driving_path = pathlib.Path(workdir) / "driving"
            out_path = pathlib.Path(workdir) / "result.mp4"
            media.download_to(driving_record, driving_path)
            try:
                source_rgb = media_lib.decode_image(media.read_bytes(source_record), limits.max_image_pixels)
                result = animate_media.animate_video(
                    animator, source_rgb, driving_path, out_path, options, detector=face_detector,
                    metadata=provenance.synthetic_metadata(model, job.name), progress=job.progress,
                )
            except (animate_media.NoFace, media_lib.InvalidMedia) as exc:
                raise JobFailed(code_pb2.INVALID_ARGUMENT, str(exc)) from None
            job.progress(result.frames, result.frames, force=True)
            display_name = f"animated-{source_record.display_name or source_record.id}.mp4"
            stored = store_result(media, job, out_path, display_name, model)
        return creation_pb2.AnimateImageResponse(
            result_media=stored.name, frames=result.frames, frames_per_second=result.frames_per_second,
            has_audio=result.has_audio, initial_frame=result.initial_frame,
            model=common_pb2.ModelVersion(name=model, version=int(version) if version else 0),
        )

    return JobKind(creation_pb2.AnimateImageRequest, run)


def swap_face_job(creator: CreatorClient, media: MediaStore, registry: ModelRegistry,
                  face_detector: faces_lib.FaceDetector, batch_size: int) -> JobKind:
    """The swap_face job: fetch the target video, swap through TorchServe, store the labelled video.
    The face restorer of full-resolution merges runs here, loaded at the first job that needs it."""
    restorer = functools.cache(default_model.load_face_restorer)

    def run(job: JobContext) -> creation_pb2.SwapFaceResponse:
        request: creation_pb2.SwapFaceRequest = job.request
        try:
            card = swap_model_card(registry, request.model)
            target = media.get(job.team, request.target_media)
        except ResourceNotFound as exc:
            raise JobFailed(code_pb2.NOT_FOUND, f"{exc}; it was removed after the job was queued") from None
        job.progress(0, target.frame_count, force=True)
        name, version = card["name"], card["version"]
        swapper = TorchServeSwapper(creator, name, version, card["resolution"])
        options = swap_media.MergeOptions(to_identity=request.to_identity or "b", coverage=card["coverage"],
                                          color_transfer=not request.no_color_transfer,
                                          seamless=request.seamless_clone, batch_size=batch_size,
                                          visible_mark=not request.no_visible_mark,
                                          full_resolution=not request.model_resolution,
                                          smooth_alignment=not request.model_resolution,
                                          skin_mask=not request.no_skin_mask)
        restore = None if request.model_resolution else restorer()
        generator = f"faceswap:{name}:v{version}"
        with tempfile.TemporaryDirectory(prefix="dfp-swap-") as workdir:
            target_path = pathlib.Path(workdir) / "target"
            out_path = pathlib.Path(workdir) / "result.mp4"
            media.download_to(target, target_path)
            try:
                result = swap_media.swap_video(swapper, target_path, out_path, options, detector=face_detector,
                                               metadata=provenance.synthetic_metadata(generator, job.name),
                                               progress=job.progress, restore=restore)
            except (swap_media.NoFace, media_lib.InvalidMedia) as exc:
                raise JobFailed(code_pb2.INVALID_ARGUMENT, str(exc)) from None
            job.progress(result.frames, result.frames, force=True)
            stored = store_result(media, job, out_path, f"swapped-{target.display_name or target.id}.mp4", generator)
        return creation_pb2.SwapFaceResponse(
            result_media=stored.name, frames=result.frames, swapped_frames=result.swapped_frames,
            frames_per_second=result.frames_per_second, has_audio=result.has_audio,
            model=common_pb2.ModelVersion(name=name, version=version),
        )

    return JobKind(creation_pb2.SwapFaceRequest, run)
