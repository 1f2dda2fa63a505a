"""TorchServe handler for face swap: decode a batch of aligned faces, run them through the shared
encoder and the asked identity's decoder, encode the faces and masks.

The archive holds this file, the settings (``swap.json``) and the weights-only checkpoint (the
archive's serialized file). Detection, alignment and blending stay with the caller, so the same
merge code runs offline and behind the gateway."""

from __future__ import annotations

import logging
import os

import numpy as np
from ts.utils.util import PredictionException

from services.creator import swap_model
from services.creator.pipelines.swap_media import FaceSwapper
from services.creator.serving import protocol
from services.creator.serving.handler_entry import entry_point, worker_device

log = logging.getLogger(__name__)


class SwapHandler:
    def __init__(self):
        self.swapper: FaceSwapper | None = None
        self.initialized = False

    def initialize(self, context) -> None:
        model_dir = context.system_properties["model_dir"]
        checkpoint = context.manifest["model"]["serializedFile"]
        device = worker_device(context)
        model, _ = swap_model.load_model(os.path.join(model_dir, swap_model.SETTINGS), os.path.join(model_dir, checkpoint))
        self.swapper = FaceSwapper(model, device)
        size = self.swapper.resolution
        self.swapper.swap(np.zeros((1, size, size, 3), np.uint8), swap_model.IDENTITIES[0])
        self.initialized = True
        log.info("face swap %s ready on %s at %dx%d", context.model_name, device, size, size)

    def _swap(self, body: bytes) -> bytes:
        try:
            request = protocol.decode_swap_request(body, self.swapper.resolution, swap_model.IDENTITIES)
        except protocol.BadRequest as exc:
            raise PredictionException(str(exc), 400) from None
        faces, masks = self.swapper.swap(request.faces, request.to_identity)
        return protocol.encode_swap_response(faces, (masks * 255 + 0.5).clip(0, 255).astype(np.uint8))

    def handle(self, data, context):
        return [self._swap(row.get("body") or row.get("data") or b"") for row in data]


handle = entry_point(SwapHandler())
