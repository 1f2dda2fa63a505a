"""Detection: faces -> crops -> detector model -> verdicts, for images and videos.

The same steps as the offline scorer (services.detector.scoring), with the model behind TensorFlow
Serving's API: face finding and cropping run here, and the model server receives face crops only.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable

import numpy as np
from google.protobuf import duration_pb2

from dfp import faces as faces_lib
from dfp import media
from dfp.v1 import common_pb2, detection_pb2
from gateway.detector_client import DetectorClient
from gateway.errors import InvalidArgument

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.5
DEFAULT_MIN_FACE_SIZE = 40
DEFAULT_MIN_FACE_CONFIDENCE = 0.9
DEFAULT_FRAMES_PER_SECOND = 2.0
DEFAULT_MAX_FRAMES = 300
MAX_FRAMES_LIMIT = 3000
FRAMES_PER_BATCH = 8


@dataclasses.dataclass(frozen=True)
class DetectionParams:
    model: str
    version: int | None
    face_crop: bool
    threshold: float
    min_face_size: int
    min_face_confidence: float


def params_from_options(options: detection_pb2.DetectionOptions, default_model: str) -> DetectionParams:
    if not 0.0 <= options.threshold <= 1.0:
        raise InvalidArgument("options.threshold must be in [0, 1]")
    if options.min_face_size < 0:
        raise InvalidArgument("options.min_face_size must not be negative")
    if not 0.0 <= options.min_face_confidence <= 1.0:
        raise InvalidArgument("options.min_face_confidence must be in [0, 1]")
    if options.face_crop not in (detection_pb2.FACE_CROP_UNSPECIFIED, detection_pb2.FACE_CROP_ON, detection_pb2.FACE_CROP_OFF):
        raise InvalidArgument(f"options.face_crop has unknown value {options.face_crop}")
    version = options.model.version.value if options.model.HasField("version") else None
    if version is not None and version <= 0:
        raise InvalidArgument("options.model.version must be positive when set")
    return DetectionParams(
        model=options.model.name or default_model,
        version=version,
        face_crop=options.face_crop != detection_pb2.FACE_CROP_OFF,
        threshold=options.threshold or DEFAULT_THRESHOLD,
        min_face_size=options.min_face_size or DEFAULT_MIN_FACE_SIZE,
        min_face_confidence=options.min_face_confidence or DEFAULT_MIN_FACE_CONFIDENCE,
    )


def verdict(probabilities: list[float], threshold: float) -> detection_pb2.Verdict:
    if not probabilities:
        return detection_pb2.Verdict(label=detection_pb2.NO_FACE, threshold=threshold)
    highest = max(probabilities)
    return detection_pb2.Verdict(
        label=detection_pb2.FAKE if highest >= threshold else detection_pb2.REAL,
        max_fake_probability=highest,
        mean_fake_probability=float(np.mean(probabilities)),
        threshold=threshold,
        faces_scored=len(probabilities),
    )


def _face_score(face: faces_lib.Face, probability: float, threshold: float, track_id: int = 0) -> detection_pb2.FaceScore:
    return detection_pb2.FaceScore(
        box=common_pb2.BoundingBox(x_min=face.box[0], y_min=face.box[1], x_max=face.box[2], y_max=face.box[3]),
        detection_confidence=face.confidence,
        fake_probability=probability,
        label=detection_pb2.FAKE if probability >= threshold else detection_pb2.REAL,
        track_id=track_id,
    )


class DetectionPipeline:
    def __init__(self, detector: DetectorClient, face_detector: faces_lib.FaceDetector, input_size: int = faces_lib.MODEL_INPUT_SIZE):
        self._detector = detector
        self._faces = face_detector
        self._input_size = input_size

    def _crops(self, frames: list[np.ndarray], params: DetectionParams) -> list[tuple[list[faces_lib.Face], np.ndarray]]:
        if not params.face_crop:
            return [faces_lib.whole_image_as_face(rgb, self._input_size) for rgb in frames]
        found = self._faces.detect_batch(frames)
        return [
            faces_lib.face_crops(rgb, faces, self._input_size, params.min_face_size, params.min_face_confidence)
            for rgb, faces in zip(frames, found)
        ]

    def _score(self, crops: np.ndarray, params: DetectionParams) -> tuple[np.ndarray, common_pb2.ModelVersion | None]:
        if len(crops) == 0:
            return np.zeros((0,), np.float32), None
        prediction = self._detector.predict(crops, params.model, params.version)
        return prediction.fake_probability, common_pb2.ModelVersion(name=prediction.model, version=prediction.version)

    def detect_image(self, rgb: np.ndarray, params: DetectionParams) -> detection_pb2.DetectImageResponse:
        began = time.perf_counter()
        ((faces, crops),) = self._crops([rgb], params)
        found = time.perf_counter()
        probabilities, model = self._score(crops, params)
        log.info(
            "image %dx%d: %s %d face(s) in %.0f ms; %d crop(s) of %dx%d scored by %s in %.0f ms; max p(fake) %s",
            rgb.shape[1], rgb.shape[0], "MTCNN found" if params.face_crop else "face crop off,", len(faces),
            (found - began) * 1000, len(crops), self._input_size, self._input_size,
            f"{model.name} v{model.version}" if model else "no model", (time.perf_counter() - found) * 1000,
            f"{max(probabilities):.4f}" if len(probabilities) else "none",
        )
        response = detection_pb2.DetectImageResponse(
            faces=[_face_score(f, float(p), params.threshold) for f, p in zip(faces, probabilities)],
            verdict=verdict([float(p) for p in probabilities], params.threshold),
            width=rgb.shape[1],
            height=rgb.shape[0],
        )
        if model is not None:
            response.model.CopyFrom(model)
        return response

    def detect_video(
        self,
        path: str,
        params: DetectionParams,
        sampling: detection_pb2.FrameSampling,
        expected_frames: int,
        progress: Callable[[int, int], None],
    ) -> detection_pb2.DetectVideoResponse:
        frames_per_second, frame_count, max_frames = sampling_values(sampling)
        tracker = faces_lib.FaceTracker()
        response = detection_pb2.DetectVideoResponse()
        by_track: dict[int, list[tuple[int, float]]] = {}
        all_probabilities: list[float] = []
        batch: list[media.Frame] = []
        done = 0

        def flush() -> None:
            nonlocal done
            per_frame = self._crops([f.rgb for f in batch], params)
            counts = [len(faces) for faces, _ in per_frame]
            crops = np.concatenate([c for _, c in per_frame]) if per_frame else np.zeros((0,))
            probabilities, model = self._score(crops, params)
            if model is not None:
                response.model.CopyFrom(model)
            offset = 0
            for frame, (faces, _), count in zip(batch, per_frame, counts):
                frame_probabilities = [float(p) for p in probabilities[offset : offset + count]]
                offset += count
                track_ids = tracker.update(faces)
                scores = response.frames.add(frame_index=frame.index)
                scores.timestamp.CopyFrom(_duration(frame.timestamp_s))
                for face, probability, track_id in zip(faces, frame_probabilities, track_ids):
                    scores.faces.append(_face_score(face, probability, params.threshold, track_id))
                    by_track.setdefault(track_id, []).append((frame.index, probability))
                    all_probabilities.append(probability)
            done += len(batch)
            batch.clear()
            progress(done, max(expected_frames, done))

        for frame in media.sample_frames(path, frames_per_second=frames_per_second, frame_count=frame_count, max_frames=max_frames):
            batch.append(frame)
            if len(batch) == FRAMES_PER_BATCH:
                flush()
        if batch:
            flush()
        for track_id in sorted(by_track):
            entries = by_track[track_id]
            response.tracks.add(
                track_id=track_id,
                verdict=verdict([p for _, p in entries], params.threshold),
                first_frame_index=entries[0][0],
                last_frame_index=entries[-1][0],
            )
        response.verdict.CopyFrom(verdict(all_probabilities, params.threshold))
        response.frames_sampled = done
        log.info(
            "video: %d frames sampled, %d faces scored by %s v%d in %d track(s); max p(fake) %.4f, mean %.4f",
            done, len(all_probabilities), response.model.name, response.model.version, len(response.tracks),
            response.verdict.max_fake_probability, response.verdict.mean_fake_probability,
        )
        return response


def sampling_values(sampling: detection_pb2.FrameSampling) -> tuple[float, int, int]:
    if sampling.frames_per_second < 0 or sampling.frame_count < 0 or sampling.max_frames < 0:
        raise InvalidArgument("sampling values must not be negative")
    if sampling.max_frames > MAX_FRAMES_LIMIT or sampling.frame_count > MAX_FRAMES_LIMIT:
        raise InvalidArgument(f"at most {MAX_FRAMES_LIMIT} frames can be sampled")
    if not math.isfinite(sampling.frames_per_second):
        raise InvalidArgument("sampling.frames_per_second must be finite")
    return (
        sampling.frames_per_second or DEFAULT_FRAMES_PER_SECOND,
        sampling.frame_count,
        sampling.max_frames or DEFAULT_MAX_FRAMES,
    )


def expected_frame_count(duration_s: float, sampling: detection_pb2.FrameSampling) -> int:
    frames_per_second, frame_count, max_frames = sampling_values(sampling)
    if frame_count:
        return min(frame_count, max_frames)
    return min(max_frames, max(1, math.ceil(duration_s * frames_per_second)))


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(round(seconds * 1e9)))
    return value
