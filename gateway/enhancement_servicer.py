"""dfp.v1.EnhancementService, and the enhance job it queues.

The job hands the enhancer object-store URIs (the stored blob in, a scratch key under the job's
results out), stores what it wrote as a new media item labelled like every synthetic result, and
removes the scratch object. The labels, watermark payload included, name the operation.
"""

from __future__ import annotations

import pathlib
import tempfile

from google.rpc import code_pb2

from dfp import media as media_lib
from dfp import storage
from dfp.config import LimitSettings
from dfp.enhancer.v1 import enhancer_pb2
from dfp.storage import MEDIA, RESULTS, ObjectStore
from dfp.v1 import enhancement_pb2, enhancement_pb2_grpc
from gateway.auth import TeamResolver
from gateway.enhancer_client import EnhancerClient
from gateway.errors import InvalidArgument, LimitExceeded, ResourceNotFound, abort_on_error
from gateway.jobs import JobContext, JobFailed, JobKind, JobRunner, JobStore
from gateway.media_store import MediaRecord, MediaStore
from gateway.results import store_result

ENHANCE = "enhance"
MODELS = ("esrgan-x4", "srvgg-x4", "face")
DEFAULT_MODEL = "esrgan-x4"
_EXTENSIONS = {"image/png": "png", "video/mp4": "mp4"}


def _model_and_scale(request: enhancement_pb2.EnhanceRequest) -> tuple[str, int]:
    model = request.model or DEFAULT_MODEL
    if model not in MODELS:
        raise InvalidArgument(f"unknown model {request.model!r}: use one of {', '.join(MODELS)}")
    if request.scale not in (0, 2, 3, 4):
        raise InvalidArgument(f"scale must be 2, 3 or 4 (0 means 4), got {request.scale}")
    return model, request.scale or 4


def _check_result_size(record: MediaRecord, scale: int, limits: LimitSettings) -> None:
    """The result must be storable: within the limits every stored media item meets."""
    limit = limits.max_image_pixels if record.media_type == media_lib.IMAGE else limits.max_video_pixels
    width, height = record.width * scale, record.height * scale
    if width * height > limit:
        raise LimitExceeded(f"{record.name} at x{scale} would be {width}x{height} = {width * height:,} pixels, over the "
                            f"limit of {limit:,} for a stored {record.media_type}: use a smaller scale")


class EnhancementServicer(enhancement_pb2_grpc.EnhancementServiceServicer):
    def __init__(self, media: MediaStore, jobs: JobStore, runner: JobRunner, limits: LimitSettings, team_of: TeamResolver):
        self._media = media
        self._jobs = jobs
        self._runner = runner
        self._limits = limits
        self._team_of = team_of

    @abort_on_error
    def Enhance(self, request, context):
        team = self._team_of(context)
        _, scale = _model_and_scale(request)
        if not request.media:
            raise InvalidArgument("set media (a stored image or video, `media/{id}`)")
        _check_result_size(self._media.get(team, request.media), scale, self._limits)
        job = self._jobs.create(team, ENHANCE, request, target=request.media, request_id=request.request_id)
        self._runner.wake()
        return job.get_operation()


def enhance_job(enhancer: EnhancerClient, media: MediaStore, store: ObjectStore) -> JobKind:
    def run(job: JobContext) -> enhancement_pb2.EnhanceResponse:
        request: enhancement_pb2.EnhanceRequest = job.request
        model, scale = _model_and_scale(request)
        try:
            record = media.get(job.team, request.media)
        except ResourceNotFound as exc:
            raise JobFailed(code_pb2.NOT_FOUND, f"{exc}; it was deleted or expired after the job was queued") from None
        operation_id = job.name.split("/", 1)[1]
        scratch_key = storage.result_key(job.team, operation_id, "enhanced")
        generator = f"enhance:{model}"
        expected_frames = record.frame_count or 1
        job.progress(0, expected_frames, force=True)
        result = enhancer.enhance(
            enhancer_pb2.EnhanceRequest(
                input_uri=store.uri(MEDIA, media.blob_key(record)), output_uri=store.uri(RESULTS, scratch_key),
                model=model, scale=scale, no_visible_mark=request.no_visible_mark,
                labels={"dfp_synthetic": "true", "dfp_generator": generator, "dfp_operation": job.name},
            ),
            # Heartbeats before the first batch carry no total: keep the one the media record gives.
            progress=lambda done, total: job.progress(done, total or expected_frames),
        )
        extension = _EXTENSIONS[result.content_type]
        try:
            with tempfile.TemporaryDirectory(prefix="dfp-enhance-") as workdir:
                local = pathlib.Path(workdir) / f"result.{extension}"
                store.download_file(RESULTS, scratch_key, local)
                stem = (record.display_name or record.id).rsplit(".", 1)[0]
                stored = store_result(media, job, local, f"{stem}-x{scale}.{extension}", generator)
        finally:
            store.delete(RESULTS, scratch_key)
        job.progress(result.frames, result.frames, force=True)
        return enhancement_pb2.EnhanceResponse(result_media=stored.name, model=model, scale=scale, width=result.width,
                                               height=result.height, frames=result.frames)

    return JobKind(enhancement_pb2.EnhanceRequest, run)
