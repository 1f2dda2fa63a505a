"""TorchServe handler for FOMM animation: decode the body, call the animation pipeline, encode.

The archive holds this file, the config (``config.yaml``) and the checkpoint in the published
layout (the archive's serialized file). Every path comes from TorchServe's context."""

from __future__ import annotations

import logging
import os

import numpy as np
from ts.utils.util import PredictionException

from services.creator import checkpoints
from services.creator.pipelines import animate_media
from services.creator.pipelines.fomm_animation import FommAnimator
from services.creator.serving import protocol
from services.creator.serving.handler_entry import entry_point, worker_device

log = logging.getLogger(__name__)


class FommHandler:
    def __init__(self):
        self.animator: FommAnimator | None = None
        self.initialized = False

    def initialize(self, context) -> None:
        model_dir = context.system_properties["model_dir"]
        checkpoint = context.manifest["model"]["serializedFile"]
        device = worker_device(context)
        model = checkpoints.load_model(os.path.join(model_dir, "config.yaml"), os.path.join(model_dir, checkpoint))
        self.animator = FommAnimator(model, device)
        size = self.animator.frame_size
        blank = np.zeros((size, size, 3), np.float32)
        self.animator.animate_batch(self.animator.prepare(blank, blank), blank[None])
        self.initialized = True
        log.info("FOMM %s ready on %s at %dx%d", context.model_name, device, size, size)

    def _animate(self, body: bytes) -> bytes:
        try:
            request = protocol.decode_request(body)
        except protocol.BadRequest as exc:
            raise PredictionException(str(exc), 400) from None
        size = self.animator.frame_size
        state = self.animator.prepare(animate_media.fit_frame(request.source, size),
                                      animate_media.fit_frame(request.initial, size), request.mode)
        driving = np.stack([animate_media.fit_frame(frame, size) for frame in request.driving])
        batch = self.animator.animate_batch(state, driving)
        return protocol.encode_response(animate_media.to_uint8(batch.prediction))

    def handle(self, data, context):
        return [self._animate(row.get("body") or row.get("data") or b"") for row in data]


handle = entry_point(FommHandler())
