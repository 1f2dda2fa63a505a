"""Drives a red-team run through the gateway: upload the inputs, create the fakes, enhance them, score
every variant with every detector, download what was made.

Everything the run learns goes into `state.json` in the run folder (rewritten whole after every
step), so a stopped run picks up where it was. Each job is submitted with a request id derived from
the run, the item and the attempt: a resubmission after a crash gets the operation the first
submission created, never a second one. Fakes are made without the visible label, which a detector
would otherwise learn in place of the fake itself (the invisible watermark and tags stay). Uploads carry the run and input in their labels and are
looked up by those (and the sha256) before uploading again.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import time
import uuid
from typing import Callable

import grpc

from dfp.client import ApiError, Client, OperationFailed, operation_result, sha256_file
from dfp.redteam import inputs as inputs_lib
from dfp.redteam.config import Detector, Enhancement, RunConfig
from dfp.v1 import common_pb2, creation_pb2, detection_pb2, enhancement_pb2

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.DEADLINE_EXCEEDED,
             grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
MAX_ATTEMPTS = 3  # operations that ended in a transient error are submitted again, as a new attempt
MAX_SUBMIT_RETRIES = 7
REQUEST_ID_NAMESPACE = uuid.UUID("5b0f3c9e-1d7a-4e55-9a43-0c6f6e2d8a11")


@dataclasses.dataclass(frozen=True)
class Variant:
    """One piece of media that gets scored: a fake or a real clip, as made or enhanced."""

    key: str  # for example "animation/s0/d0/esrgan-x4@x2" or "real/d0/none"
    kind: str  # "animation", "face_swap" or "real"
    item: str  # the creation item, for example "animation/s0/d0", or "real/d0"
    clip: str  # the clip it follows (driver, swap target or the real clip itself): the bootstrap's cluster
    enhancement: Enhancement


def plan(run: RunConfig, prepared: dict[str, inputs_lib.PreparedInput]) -> tuple[dict[str, tuple], list[Variant]]:
    """The creation items (key -> what to make) and every variant to score."""
    def name(source: str) -> str:
        return prepared[source].key.split(":", 1)[1]

    items: dict[str, tuple] = {}
    for source in run.sources:
        for driver in run.drivers:
            items[f"animation/{name(source)}/{name(driver)}"] = ("animation", prepared[source].key, prepared[driver].key)
    for target in run.swap_targets:
        items[f"face_swap/{name(target)}"] = ("face_swap", None, prepared[target].key)
    for clip in run.real_clips:
        items[f"real/{name(clip)}"] = ("real", None, prepared[clip].key)
    variants = []
    for item, (kind, _, clip) in items.items():
        for enhancement in run.enhancements:
            if kind == "real" and enhancement.model != "none" and not run.enhance_reals:
                continue
            variants.append(Variant(f"{item}/{enhancement.key}", kind, item, clip.split(":", 1)[1], enhancement))
    return items, variants


class RunState:
    """The run's progress on disk; every change is written at once (through a temporary file)."""

    def __init__(self, path: pathlib.Path, fingerprint: str):
        self.path = path
        if path.exists():
            self.data = json.loads(path.read_text())
            if self.data.get("fingerprint") != fingerprint:
                raise ValueError(f"{path.parent} holds a run of another configuration (fingerprint "
                                 f"{self.data.get('fingerprint')}, this one {fingerprint}); use a new --out folder")
        else:
            self.data = {"fingerprint": fingerprint, "uploads": {}, "steps": {}}

    def step(self, key: str) -> dict:
        return self.data["steps"].setdefault(key, {"attempt": 1})

    def save(self) -> None:
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(self.data, indent=1, sort_keys=True))
        os.replace(partial, self.path)


@dataclasses.dataclass
class Step:
    key: str
    submit: Callable[[str], object]  # request id -> operation
    response_type: type
    record: Callable[[object], dict]  # finished response -> what the state keeps


class Runner:
    def __init__(self, client: Client, run: RunConfig, folder: pathlib.Path, *, parallel: int = 4,
                 poll_s: float = 2.0, log: Callable[[str], None] = lambda message: None):
        self.client = client
        self.run = run
        self.folder = pathlib.Path(folder)
        self.parallel = parallel
        self.poll_s = poll_s
        self.log = log
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fingerprint = run.fingerprint()
        self.state = RunState(self.folder / "state.json", self.fingerprint)
        self._stored = None  # the team's media of this run, listed once when an upload is not in the state

    # Uploads

    def _upload(self, prepared: inputs_lib.PreparedInput) -> str:
        uploads = self.state.data["uploads"]
        if prepared.key in uploads:
            return uploads[prepared.key]
        labels = {"redteam_run": self.run.name, "redteam_fingerprint": self.fingerprint,
                  "redteam_input": prepared.key.replace(":", "-")}
        if self._stored is None:
            self._stored = [m for m in self.client.list_media() if m.labels.get("redteam_run") == self.run.name]
        digest = sha256_file(prepared.path)
        existing = [m for m in self._stored if m.sha256 == digest
                    and all(m.labels.get(k) == v for k, v in labels.items())]
        name = existing[0].name if existing else self.client.upload(prepared.path, labels=labels).name
        uploads[prepared.key] = name
        self.state.save()
        self.log(f"uploaded {prepared.key} as {name}")
        return name

    # Jobs

    def _request_id(self, key: str, attempt: int) -> str:
        return str(uuid.uuid5(REQUEST_ID_NAMESPACE, f"{self.run.name}/{self.fingerprint}/{key}/{attempt}"))

    def _execute(self, steps: list[Step]) -> None:
        """Runs the steps not yet done, at most `parallel` jobs in flight, retrying transient failures;
        a step that fails for good keeps its error in the state and the run goes on."""
        for step in steps:  # a transient failure of an earlier run gets another attempt in this one
            entry = self.state.step(step.key)
            if entry.get("error", "").split(":")[0] in {code.name for code in RETRYABLE}:
                del entry["error"]
                entry["attempt"] += 1
        pending = [s for s in steps if "result" not in self.state.step(s.key) and "error" not in self.state.step(s.key)]
        in_flight: dict[str, tuple[Step, str]] = {}
        refusals: dict[str, int] = {}
        while pending or in_flight:
            while pending and len(in_flight) < self.parallel:
                step = pending[0]
                entry = self.state.step(step.key)
                try:
                    operation = step.submit(self._request_id(step.key, entry["attempt"]))
                except ApiError as exc:
                    if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED and in_flight:
                        break  # over a quota: wait for jobs in flight to finish, then retry
                    refusals[step.key] = refusals.get(step.key, 0) + 1
                    # No operation was created, so the same request id is reused; a service that is
                    # starting (or a model not loaded yet) gets about two minutes.
                    if (exc.code in RETRYABLE or exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED) \
                            and refusals[step.key] <= MAX_SUBMIT_RETRIES:
                        time.sleep(min(30.0, self.poll_s * 2 ** (refusals[step.key] - 1)))
                        continue
                    entry["error"] = f"{exc.code.name}: {exc.message}"
                    self.state.save()
                    pending.pop(0)
                    self.log(f"{step.key}: {entry['error']}")
                    continue
                pending.pop(0)
                entry["operation"] = operation.name
                self.state.save()
                in_flight[step.key] = (step, operation.name)
            time.sleep(self.poll_s)
            for key, (step, name) in list(in_flight.items()):
                try:
                    operation = self.client.get_operation(name)
                except ApiError as exc:
                    if exc.code in RETRYABLE or exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                        continue
                    raise
                if not operation.done:
                    continue
                del in_flight[key]
                entry = self.state.step(key)
                try:
                    entry["result"] = step.record(operation_result(operation, step.response_type))
                    self.log(f"{key}: done")
                except OperationFailed as exc:
                    if exc.code in RETRYABLE and entry["attempt"] < MAX_ATTEMPTS:
                        entry["attempt"] += 1
                        pending.append(step)
                    else:
                        entry["error"] = f"{exc.code.name}: {exc.message}"
                        self.log(f"{key}: {entry['error']}")
                self.state.save()

    def _result(self, key: str) -> dict | None:
        return self.state.step(key).get("result")

    # Stages

    def _creation_steps(self, items: dict[str, tuple]) -> list[Step]:
        uploads = self.state.data["uploads"]
        steps = []
        for item, (kind, still, clip) in items.items():
            if kind == "animation":
                def submit(request_id, still=still, clip=clip):
                    return self.client.animate_image(uploads[still], uploads[clip], model=self.run.animation_model,
                                                     no_visible_mark=True, request_id=request_id)
                response_type = creation_pb2.AnimateImageResponse
            elif kind == "face_swap":
                def submit(request_id, clip=clip):
                    return self.client.swap_face(uploads[clip], self.run.swap_model, no_visible_mark=True,
                                                 request_id=request_id)
                response_type = creation_pb2.SwapFaceResponse
            else:
                continue
            steps.append(Step(f"create/{item}", submit, response_type, lambda r: {
                "media": r.result_media, "model": {"name": r.model.name, "version": r.model.version}}))
        return steps

    def _source_media(self, variant: Variant, items: dict[str, tuple]) -> str | None:
        """The media a variant is made from: the created fake, or the real clip itself."""
        kind, _, clip = items[variant.item]
        if kind == "real":
            return self.state.data["uploads"][clip]
        created = self._result(f"create/{variant.item}")
        return created["media"] if created else None

    def _enhance_steps(self, variants: list[Variant], items: dict[str, tuple]) -> list[Step]:
        steps = []
        for variant in variants:
            source = self._source_media(variant, items)
            if variant.enhancement.model == "none" or source is None:
                continue

            def submit(request_id, source=source, enhancement=variant.enhancement):
                return self.client.enhance(source, model=enhancement.model, scale=enhancement.scale,
                                           no_visible_mark=True, request_id=request_id)
            steps.append(Step(f"enhance/{variant.key}", submit, enhancement_pb2.EnhanceResponse,
                              lambda r: {"media": r.result_media, "model": r.model}))
        return steps

    def variant_media(self, variant: Variant, items: dict[str, tuple]) -> str | None:
        if variant.enhancement.model == "none":
            return self._source_media(variant, items)
        enhanced = self._result(f"enhance/{variant.key}")
        return enhanced["media"] if enhanced else None

    def _detect_steps(self, variants: list[Variant], items: dict[str, tuple]) -> list[Step]:
        sampling = detection_pb2.FrameSampling(frame_count=self.run.frame_count)
        steps = []
        for variant in variants:
            media = self.variant_media(variant, items)
            if media is None:
                continue
            for detector in self.run.detectors:
                options = detection_pb2.DetectionOptions(model=_model_spec(detector), threshold=self.run.threshold)

                def submit(request_id, media=media, options=options):
                    return self.client.detect_video(media, options=options, sampling=sampling, request_id=request_id)
                steps.append(Step(f"detect/{detector.key}/{variant.key}", submit, detection_pb2.DetectVideoResponse,
                                  _frame_scores))
        return steps

    def _download(self, variants: list[Variant], items: dict[str, tuple]) -> None:
        """Keeps a copy of every scored variant in the run folder, for the report's crops and for
        hard-example training."""
        folder = self.folder / "media"
        folder.mkdir(exist_ok=True)
        downloads = self.state.data.setdefault("downloads", {})
        for variant in variants:
            media = self.variant_media(variant, items)
            path = folder / f"{variant.key.replace('/', '__')}.mp4"
            if media is None or (downloads.get(variant.key) == media and path.exists()):
                continue
            self.client.download(media, path)
            downloads[variant.key] = media
            self.state.save()

    def execute(self) -> dict:
        """Runs (or resumes) the whole run; returns the state."""
        prepared = inputs_lib.prepare(self.run, self.folder / "inputs", lambda name, path: self.client.download(name, path))
        items, variants = plan(self.run, prepared)
        for entry in prepared.values():
            self._upload(entry)
        self.log(f"{len(items)} items, {len(variants)} variants, {len(self.run.detectors)} detectors")
        self._execute(self._creation_steps(items))
        self._execute(self._enhance_steps(variants, items))
        self._execute(self._detect_steps(variants, items))
        self._download(variants, items)
        self.state.data["plan"] = {
            "items": {k: list(v) for k, v in items.items()},
            "variants": [dataclasses.asdict(v) for v in variants],
            "inputs": {e.key: str(e.source) for e in prepared.values()},
        }
        self.state.save()
        return self.state.data


def _model_spec(detector: Detector) -> common_pb2.ModelSpec:
    spec = common_pb2.ModelSpec(name=detector.model)
    if detector.version is not None:
        spec.version.value = detector.version
    return spec


def _frame_scores(response: detection_pb2.DetectVideoResponse) -> dict:
    """Per sampled frame, the most confidently found face's score and box (None when no face)."""
    frames = []
    for frame in response.frames:
        face = max(frame.faces, key=lambda f: f.detection_confidence, default=None)
        frames.append({
            "frame_index": frame.frame_index,
            "score": None if face is None else round(float(face.fake_probability), 6),
            "box": None if face is None else [face.box.x_min, face.box.y_min, face.box.x_max, face.box.y_max],
        })
    return {"model": {"name": response.model.name, "version": response.model.version}, "frames": frames}
