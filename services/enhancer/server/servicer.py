"""dfp.enhancer.v1.EnhancerService: downloads the input, enhances it in bounded memory, uploads the result.

Networks are loaded once per name and shared; `concurrency` enhancements run at once (one GPU does
not gain from more), the rest wait within their deadline. Work stops at the next batch when the
caller's deadline passes or it cancels, and nothing is uploaded unless the whole result was written.
While a long image or batch runs, the last progress is repeated every few seconds, so the caller
knows the work is alive (the gateway's job checks for a cancel request on each one).
"""

from __future__ import annotations

import logging
import pathlib
import tempfile
import threading

import grpc

from dfp import media
from dfp.config import EnhancerSettings
from dfp.enhancer.v1 import enhancer_pb2, enhancer_pb2_grpc
from dfp.storage import NotFound, ObjectStore
from services.enhancer import catalogue, tiling
from services.enhancer.pipelines.enhance_media import EnhanceOptions, Enhancer, enhance_file

log = logging.getLogger(__name__)

MODELS = catalogue.MODELS
_CONTENT_TYPES = {"image": "image/png", "video": "video/mp4"}
HEARTBEAT_S = 5.0


class CallEnded(Exception):
    """The caller's deadline passed or it cancelled: stop working."""


class ModelCache:
    def __init__(self, device: str, folder: pathlib.Path | None = None, dfdnet: catalogue.DfdnetFiles | None = None):
        self._device = device or None
        self._folder = folder
        self._dfdnet = dfdnet
        self._models: dict[str, Enhancer] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: EnhancerSettings) -> "ModelCache":
        dfdnet = None
        if settings.dfdnet_checkpoint or settings.dfdnet_dictionary:
            dfdnet = catalogue.DfdnetFiles(pathlib.Path(settings.dfdnet_checkpoint), pathlib.Path(settings.dfdnet_dictionary),
                                           pathlib.Path(settings.vgg19) if settings.vgg19 else None)
        return cls(settings.device, dfdnet=dfdnet)

    def get(self, name: str) -> Enhancer:
        with self._lock:
            if name not in self._models:
                self._models[name] = catalogue.load(name, self._device, self._folder, self._dfdnet)
                log.info("loaded %s (%s)", name, self._models[name].name)
            return self._models[name]


class EnhancerServicer(enhancer_pb2_grpc.EnhancerServiceServicer):
    def __init__(self, settings: EnhancerSettings, store: ObjectStore, models: ModelCache):
        self._settings = settings
        self._store = store
        self._models = models
        self._slots = threading.BoundedSemaphore(max(settings.concurrency, 1))

    def _options(self, request: enhancer_pb2.EnhanceRequest) -> EnhanceOptions:
        tile = request.tile or self._settings.tile
        if request.tile < 0:
            raise ValueError(f"tile must be 0 (the service's default) or positive, got {request.tile}")
        return EnhanceOptions(
            scale=request.scale or None,
            tiles=tiling.TileOptions(tile, self._settings.tile_pad, self._settings.batch_size, self._settings.half),
            frames_per_batch=self._settings.batch_size,
            visible_mark=not request.no_visible_mark,
            max_input_pixels=self._settings.limits.max_image_pixels,
            max_output_pixels=self._settings.max_output_pixels,
        )

    def Enhance(self, request, context):
        try:
            if request.model not in MODELS:
                raise ValueError(f"unknown model {request.model!r}: use one of {', '.join(MODELS)}")
            if request.scale and request.scale not in (2, 3, 4):
                raise ValueError(f"scale must be 2, 3 or 4 (or 0 for the model's own), got {request.scale}")
            options = self._options(request)
            input_kind, input_key = self._store.parse_uri(request.input_uri)
            output_kind, output_key = self._store.parse_uri(request.output_uri)
        except ValueError as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        updates: list[enhancer_pb2.EnhanceProgress] = []
        condition = threading.Condition()
        outcome: dict = {}

        def progress(done: int, total: int) -> None:
            if not context.is_active():
                raise CallEnded()
            with condition:
                updates.append(enhancer_pb2.EnhanceProgress(frames_done=done, frames_total=total))
                condition.notify()

        def work() -> None:
            try:
                outcome["result"] = self._enhance(request, options, (input_kind, input_key),
                                                  (output_kind, output_key), progress, context)
            except BaseException as exc:
                outcome["error"] = exc
            with condition:
                outcome["finished"] = True
                condition.notify()

        # The work runs beside the stream so progress reaches the caller while frames are processed.
        threading.Thread(target=work, name="enhance", daemon=True).start()
        last = enhancer_pb2.EnhanceProgress()
        while True:
            with condition:
                condition.wait_for(lambda: updates or outcome.get("finished"), timeout=HEARTBEAT_S)
                pending, updates[:] = list(updates), []
                finished = outcome.get("finished", False)
            if pending:
                last = pending[-1]
            yield from pending or ([] if finished else [last])
            if finished:
                break
        error = outcome.get("error")
        if error is not None:
            self._abort_for(error, context)
        yield enhancer_pb2.EnhanceProgress(frames_done=outcome["result"].frames, frames_total=outcome["result"].frames,
                                           done=True, result=outcome["result"])

    def _enhance(self, request, options: EnhanceOptions, source: tuple[str, str], target: tuple[str, str],
                 progress, context) -> enhancer_pb2.EnhanceResult:
        with tempfile.TemporaryDirectory(prefix="dfp-enhance-") as workdir:
            input_path = pathlib.Path(workdir) / "input"
            self._store.download_file(*source, input_path)
            if not self._slots.acquire(timeout=context.time_remaining()):
                raise CallEnded()
            try:
                if not context.is_active():
                    raise CallEnded()
                enhancer = self._models.get(request.model)
                output_path = pathlib.Path(workdir) / "output"
                result = enhance_file(enhancer, input_path, output_path, options,
                                      metadata=dict(request.labels) or None, progress=progress)
            finally:
                self._slots.release()
            if not context.is_active():
                raise CallEnded()
            content_type = _CONTENT_TYPES[result.kind]
            self._store.put_file(*target, output_path, content_type=content_type)
        return enhancer_pb2.EnhanceResult(content_type=content_type, width=result.width, height=result.height,
                                          frames=result.frames, model=enhancer.name)

    @staticmethod
    def _abort_for(error: BaseException, context) -> None:
        if isinstance(error, NotFound):
            context.abort(grpc.StatusCode.NOT_FOUND, f"input {error.args[0]} does not exist")
        if isinstance(error, media.MediaTooLarge):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error))
        if isinstance(error, (media.InvalidMedia, ValueError)):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        if isinstance(error, FileNotFoundError):
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"the service is missing model files: {error}")
        if isinstance(error, CallEnded):
            context.abort(grpc.StatusCode.CANCELLED, "the call ended (deadline or cancel) before the work finished")
        log.error("enhancement failed", exc_info=error)
        context.abort(grpc.StatusCode.INTERNAL, f"enhancement failed: {type(error).__name__}")
