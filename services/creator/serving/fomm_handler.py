"""TorchServe handler for FOMM animation: decode the body, call the animation pipeline, encode.

The archive holds this file, the config (``config.yaml``), the checkpoint in the published layout
(the archive's serialized file) and the face restorer that full-resolution requests apply to the
generator's pixels (``face_restore.pth``). Every path comes from TorchServe's context."""

from __future__ import annotations

import logging
import os

import numpy as np
from ts.utils.util import PredictionException

from services.creator import checkpoints, default_model
from services.creator.pipelines import animate_media
from services.creator.pipelines.fomm_animation import FommAnimator
from services.creator.pipelines.full_resolution import FullResolutionAnimator, working_side
from services.creator.serving import protocol
from services.creator.serving.handler_entry import entry_point, worker_device

log = logging.getLogger(__name__)

FACE_RESTORER = "face_restore.pth"


class FommHandler:
    def __init__(self):
        self.animator: FommAnimator | None = None
        self.full_resolution: FullResolutionAnimator | None = None
        self.initialized = False

    def initialize(self, context) -> None:
        model_dir = context.system_properties["model_dir"]
        checkpoint = context.manifest["model"]["serializedFile"]
        device = worker_device(context)
        model = checkpoints.load_model(os.path.join(model_dir, "config.yaml"), os.path.join(model_dir, checkpoint))
        self.animator = FommAnimator(model, device)
        restorer = default_model.load_face_restorer(device, os.path.join(model_dir, FACE_RESTORER))
        self.full_resolution = FullResolutionAnimator(self.animator, restorer)
        size = self.animator.frame_size
        blank = np.zeros((size, size, 3), np.float32)
        self.animator.animate_batch(self.animator.prepare(blank, blank), blank[None])
        side = working_side(4 * size)
        large = np.zeros((side, side, 3), np.float32)
        self.full_resolution.animate_batch(self.full_resolution.prepare(large, blank), blank[None])
        self.initialized = True
        log.info("FOMM %s ready on %s at %dx%d", context.model_name, device, size, size)

    def _animate(self, body: bytes) -> bytes:
        try:
            request = protocol.decode_request(body)
        except protocol.BadRequest as exc:
            raise PredictionException(str(exc), 400) from None
        size = self.animator.frame_size
        if request.full_resolution:
            animator = self.full_resolution
            source = animate_media.fit_frame(request.source, request.source.shape[0])
        else:
            animator = self.animator
            source = animate_media.fit_frame(request.source, size)
        state = animator.prepare(source, animate_media.fit_frame(request.initial, size), request.mode)
        driving = np.stack([animate_media.fit_frame(frame, size) for frame in request.driving])
        batch = animator.animate_batch(state, driving)
        return protocol.encode_response(animate_media.to_uint8(batch.prediction))

    def handle(self, data, context):
        return [self._animate(row.get("body") or row.get("data") or b"") for row in data]


handle = entry_point(FommHandler())
