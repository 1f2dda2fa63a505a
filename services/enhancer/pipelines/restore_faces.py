"""Face-aware enhancement: the background through super-resolution, every face through a restorer.

For each image: the whole image is upscaled by the super-resolution network; faces are found (with
their five landmarks) on the input, each is aligned from a bicubic enlargement of the input into the
restorer's square crop, restored, and pasted back into the upscaled image with a feathered mask.
The restorer sees faces the way it was trained: degraded, at output size, aligned to the template.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from dfp import alignment
from dfp.faces import FaceDetector
from services.enhancer import tiling
from services.enhancer.face_restorers import FaceRestorer
from services.enhancer.upscaler import Upscaler

# How much of the head the aligned crop takes in (1 = the template's tight framing).
COVERAGE = 1.5
# Faces smaller than this (shorter box side, input pixels) are left to the super-resolution network.
MIN_FACE_SIDE = 12


@dataclasses.dataclass(frozen=True)
class FaceEnhancer:
    upscaler: Upscaler
    restorer: FaceRestorer
    detector: FaceDetector

    @property
    def name(self) -> str:
        return f"{self.upscaler.name}+{self.restorer.name}"

    @property
    def model_scale(self) -> int:
        return self.upscaler.model_scale

    def enhance_frames(self, frames: np.ndarray, scale: int, tiles: tiling.TileOptions) -> tuple[np.ndarray, int]:
        """Enhanced uint8 frames (NxHxWx3 in, N x H*scale x W*scale x 3 out) and how many faces were restored."""
        background = tiling.upscale_frames(self.upscaler.model, frames.astype(np.float32) / 255.0,
                                           self.upscaler.model_scale, scale, self.upscaler.tiles(tiles))
        results = (np.clip(background, 0, 1) * 255.0 + 0.5).astype(np.uint8)
        restored = 0
        for index, (frame, faces) in enumerate(zip(frames, self.detector.detect_batch(list(frames)))):
            faces = [face for face in faces if face.landmarks and face.side >= MIN_FACE_SIDE]
            if not faces:
                continue
            height, width = frame.shape[:2]
            enlarged = cv2.resize(frame, (width * scale, height * scale), interpolation=cv2.INTER_CUBIC)
            aligned = [alignment.align_face(enlarged, np.array(face.landmarks) * scale, self.restorer.size, COVERAGE)
                       for face in faces]
            crop_landmarks = np.stack([
                (np.hstack([np.array(face.landmarks) * scale, np.ones((5, 1))]) @ crop.matrix.T)
                for face, crop in zip(faces, aligned)
            ])
            outputs = self.restorer.restore(np.stack([crop.image for crop in aligned]), crop_landmarks)
            for crop, output in zip(aligned, outputs):
                results[index] = alignment.paste_aligned(results[index], output, crop.matrix)
            restored += len(faces)
        return results, restored
