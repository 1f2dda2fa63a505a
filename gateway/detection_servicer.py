"""dfp.v1.DetectionService, and the detect_video job that DetectVideo queues."""

from __future__ import annotations

import json
import tempfile

from google.protobuf import json_format
from google.rpc import code_pb2

from dfp import media as media_lib
from dfp import storage
from dfp.config import LimitSettings
from dfp.storage import RESULTS, ObjectStore
from dfp.v1 import detection_pb2, detection_pb2_grpc
from gateway.detection import DetectionPipeline, expected_frame_count, params_from_options, sampling_values
from gateway.errors import InvalidArgument, LimitExceeded, ResourceNotFound, abort_on_error
from gateway.jobs import JobContext, JobFailed, JobKind, JobRunner, JobStore
from gateway.media_store import MediaStore
from gateway.auth import TeamResolver

DETECT_VIDEO = "detect_video"


class DetectionServicer(detection_pb2_grpc.DetectionServiceServicer):
    def __init__(self, pipeline: DetectionPipeline, media: MediaStore, jobs: JobStore, runner: JobRunner,
                 limits: LimitSettings, default_model: str, team_of: TeamResolver):
        self._pipeline = pipeline
        self._media = media
        self._jobs = jobs
        self._runner = runner
        self._limits = limits
        self._default_model = default_model
        self._team_of = team_of

    @abort_on_error
    def DetectImage(self, request, context):
        params = params_from_options(request.options, self._default_model)
        source = request.WhichOneof("source")
        if source is None:
            raise InvalidArgument("set either media (a stored image's name) or image_bytes")
        if source == "media":
            record = self._media.get(self._team_of(context), request.media)
            if record.media_type != media_lib.IMAGE:
                raise InvalidArgument(f"{request.media} is a video; use DetectVideo")
            data = self._media.read_bytes(record)
        else:
            data = request.image_bytes
            if not data:
                raise InvalidArgument("image_bytes is empty")
            if len(data) > self._limits.max_inline_image_bytes:
                raise LimitExceeded(
                    f"inline image of {len(data)} bytes is over the {self._limits.max_inline_image_bytes}-byte limit; "
                    "upload it with UploadMedia and pass its name"
                )
            kind = media_lib.sniff(data[:64])
            if kind == media_lib.VIDEO:
                raise InvalidArgument("image_bytes holds a video; upload it and use DetectVideo")
            if kind is None:
                raise InvalidArgument(f"image_bytes is not an image ({media_lib.SUPPORTED_IMAGES})")
        rgb = media_lib.decode_image(data, self._limits.max_image_pixels)
        return self._pipeline.detect_image(rgb, params)

    @abort_on_error
    def DetectVideo(self, request, context):
        team = self._team_of(context)
        params_from_options(request.options, self._default_model)
        sampling_values(request.sampling)
        record = self._media.get(team, request.media)
        if record.media_type != media_lib.VIDEO:
            raise InvalidArgument(f"{request.media} is an image; use DetectImage")
        job = self._jobs.create(team, DETECT_VIDEO, request, target=request.media, request_id=request.request_id)
        self._runner.wake()
        return job.get_operation()


def detect_video_job(pipeline: DetectionPipeline, media: MediaStore, store: ObjectStore, default_model: str) -> JobKind:
    """The detect_video job: download the video, score sampled frames, store the report."""

    def run(job: JobContext) -> detection_pb2.DetectVideoResponse:
        request: detection_pb2.DetectVideoRequest = job.request
        params = params_from_options(request.options, default_model)
        try:
            record = media.get(job.team, request.media)
        except ResourceNotFound as exc:
            raise JobFailed(code_pb2.NOT_FOUND, f"{exc}; it was deleted or expired after the job was queued") from None
        expected = expected_frame_count(record.duration_s, request.sampling)
        job.progress(0, expected, force=True)
        with tempfile.NamedTemporaryFile(prefix="dfp-video-") as local:
            media.download_to(record, local.name)
            try:
                response = pipeline.detect_video(local.name, params, request.sampling, expected, job.progress)
            except media_lib.InvalidMedia as exc:
                raise JobFailed(code_pb2.INVALID_ARGUMENT, str(exc)) from None
        job.progress(response.frames_sampled, response.frames_sampled, force=True)
        operation_id = job.name.split("/", 1)[1]
        key = storage.result_key(job.team, operation_id, "detection.json")
        response.result_uri = store.uri(RESULTS, key)
        report = json_format.MessageToDict(response, preserving_proto_field_name=True)
        store.put_bytes(RESULTS, key, json.dumps(report, indent=1).encode(), "application/json")
        return response

    return JobKind(detection_pb2.DetectVideoRequest, run)
