"""TorchServe handler for FOMM animation: decode the body, call the animation pipeline, encode.

The archive holds this file, the config (``config.yaml``) and the checkpoint in the published
layout (the archive's serialized file). Every path comes from TorchServe's context."""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from ts.utils.util import PredictionException

from services.creator import checkpoints
from services.creator.pipelines import animate_media
from services.creator.pipelines.fomm_animation import FommAnimator
from services.creator.serving import protocol

log = logging.getLogger(__name__)


class FommHandler:
    def __init__(self):
        self.animator: FommAnimator | None = None
        self.initialized = False

    def initialize(self, context) -> None:
        properties = context.system_properties
        model_dir = properties["model_dir"]
        checkpoint = context.manifest["model"]["serializedFile"]
        gpu_id = properties.get("gpu_id")
        device = f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"
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


_service = FommHandler()


def handle(data, context):
    if not _service.initialized:
        _service.initialize(context)
    if data is None:
        return None
    return _service.handle(data, context)
