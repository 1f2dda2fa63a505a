"""A red-team run's configuration: what to create, how to enhance it, which detectors score it.

Example (every key but `name` has a default or may be left out). Inputs are local files, relative to
the shared data folder (DFP_SHARED_DIR/data) unless absolute, or stored media names (`media/...`, as
`dfp upload` prints them), which is what a run in a cluster uses:

    name: shared-clips
    inputs: {max_side: 256, frames: 16}
    animation:
      sources: [video/source/s0.jpg, video/source/s3.jpg]
      drivers: [video/driving/d0.mp4, video/driving/d12.mp4]
    face_swap:
      model: swap-d6-d9
      targets: [video/driving/d6.mp4]
    real_clips: [video/driving/d20.mp4]
    enhancements: [none, {model: esrgan-x4, scale: 2}, {model: face, scale: 2}]
    detectors: [{model: detector}, {model: meso4, version: 1}]
    sampling: {frame_count: 8}
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
import re

import yaml

from dfp import config as dfp_config

ENHANCER_MODELS = ("esrgan-x4", "srvgg-x4", "face")
CREATION_METHODS = ("animation", "face_swap")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
MEDIA_NAME_PATTERN = re.compile(r"^media/[a-z0-9]{1,64}$")


class ConfigError(ValueError):
    """The configuration is not usable; the message says which key and why."""


@dataclasses.dataclass(frozen=True)
class Enhancement:
    """`model` "none" leaves the media as created."""

    model: str
    scale: int = 4

    @property
    def key(self) -> str:
        return "none" if self.model == "none" else f"{self.model}@x{self.scale}"


@dataclasses.dataclass(frozen=True)
class Detector:
    """A detector model served by the platform; version None means the newest the server has."""

    model: str
    version: int | None = None

    @property
    def key(self) -> str:
        return self.model if self.version is None else f"{self.model}@v{self.version}"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    name: str
    # Inputs: absolute local paths, or stored media names (media/...).
    sources: tuple[str, ...]
    drivers: tuple[str, ...]
    animation_model: str
    swap_model: str
    swap_targets: tuple[str, ...]
    extra_real_clips: tuple[str, ...]
    enhancements: tuple[Enhancement, ...]
    enhance_reals: bool
    detectors: tuple[Detector, ...]
    max_side: int
    frames: int
    frame_count: int
    threshold: float
    bootstrap: int
    seed: int

    @property
    def real_clips(self) -> tuple[str, ...]:
        """Every clip the fakes were made from, and the extra ones: the real side of every comparison."""
        seen: dict[str, None] = {}
        for clip in (*self.drivers, *self.swap_targets, *self.extra_real_clips):
            seen.setdefault(clip, None)
        return tuple(seen)

    @property
    def methods(self) -> tuple[str, ...]:
        return tuple(m for m, on in (("animation", bool(self.sources)), ("face_swap", bool(self.swap_targets))) if on)

    def fingerprint(self) -> str:
        """A hash of everything that decides the run's items and scores, so a resumed run is the same
        run; the report-only settings (threshold, bootstrap, seed) may change between runs."""
        fields = {k: v for k, v in dataclasses.asdict(self).items() if k not in ("threshold", "bootstrap", "seed")}
        return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]


def is_media_name(value: str) -> bool:
    return value.startswith("media/")


def _paths(value, key: str, base: pathlib.Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of file paths or media names")
    paths = []
    for item in value:
        if is_media_name(item):
            if not MEDIA_NAME_PATTERN.match(item):
                raise ConfigError(f"{key}: {item!r} is not a media name (media/ and an id of letters and digits)")
            paths.append(item)
            continue
        path = pathlib.Path(item)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ConfigError(f"{key}: {path} is not a file")
        paths.append(str(path.resolve()))
    return tuple(paths)


def _mapping(value, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a mapping")
    return value


def _int(mapping: dict, key: str, default: int, low: int, high: int, where: str) -> int:
    value = mapping.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}.{key} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _enhancement(value) -> Enhancement:
    if value == "none":
        return Enhancement("none", 1)
    if isinstance(value, str):
        value = {"model": value}
    value = _mapping(value, "enhancements[]")
    model = value.get("model")
    if model not in ENHANCER_MODELS:
        raise ConfigError(f"enhancements: model must be none or one of {', '.join(ENHANCER_MODELS)}, got {model!r}")
    scale = value.get("scale", 4)
    if scale not in (2, 3, 4):
        raise ConfigError(f"enhancements: scale must be 2, 3 or 4, got {scale!r}")
    return Enhancement(model, scale)


def _detector(value) -> Detector:
    if isinstance(value, str):
        value = {"model": value}
    value = _mapping(value, "detectors[]")
    model, version = value.get("model"), value.get("version")
    if not isinstance(model, str) or not model:
        raise ConfigError("detectors: every detector needs a model name")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
        raise ConfigError(f"detectors: version of {model} must be a positive integer, got {version!r}")
    return Detector(model, version)


def parse(document: dict, data_dir: pathlib.Path | None = None) -> RunConfig:
    """The checked configuration; ConfigError names the first problem found."""
    if not isinstance(document, dict):
        raise ConfigError("the configuration must be a YAML mapping")
    base = data_dir or dfp_config.shared_dir() / "data"
    unknown = set(document) - {"name", "inputs", "animation", "face_swap", "real_clips", "enhancements",
                               "enhance_reals", "detectors", "sampling", "threshold", "bootstrap", "seed"}
    if unknown:
        raise ConfigError(f"unknown keys: {', '.join(sorted(unknown))}")
    name = document.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError("name must be lowercase letters, digits and dashes (up to 63), for example shared-clips")
    inputs = _mapping(document.get("inputs"), "inputs")
    animation = _mapping(document.get("animation"), "animation")
    swap = _mapping(document.get("face_swap"), "face_swap")
    sources = _paths(animation.get("sources"), "animation.sources", base)
    drivers = _paths(animation.get("drivers"), "animation.drivers", base)
    if bool(sources) != bool(drivers):
        raise ConfigError("animation needs both sources (stills) and drivers (clips)")
    swap_targets = _paths(swap.get("targets"), "face_swap.targets", base)
    swap_model = swap.get("model", "")
    if swap_targets and not (isinstance(swap_model, str) and swap_model):
        raise ConfigError("face_swap needs the registry name of a face swap model (face_swap.model)")
    if not sources and not swap_targets:
        raise ConfigError("nothing to create: give animation sources and drivers, or face_swap targets, or both")
    enhancements = tuple(_enhancement(v) for v in document.get("enhancements", ["none"]))
    if not enhancements or len({e.key for e in enhancements}) != len(enhancements):
        raise ConfigError("enhancements must be a non-empty list without repeats")
    detectors = tuple(_detector(v) for v in document.get("detectors", [{"model": "detector"}]))
    if not detectors or len({d.key for d in detectors}) != len(detectors):
        raise ConfigError("detectors must be a non-empty list without repeats")
    sampling = _mapping(document.get("sampling"), "sampling")
    threshold = document.get("threshold", 0.5)
    if not isinstance(threshold, (int, float)) or not 0 < threshold < 1:
        raise ConfigError(f"threshold must be in (0, 1), got {threshold!r}")
    return RunConfig(
        name=name, sources=sources, drivers=drivers, animation_model=str(animation.get("model", "")),
        swap_model=swap_model, swap_targets=swap_targets,
        extra_real_clips=_paths(document.get("real_clips"), "real_clips", base),
        enhancements=enhancements, enhance_reals=bool(document.get("enhance_reals", False)), detectors=detectors,
        max_side=_int(inputs, "max_side", 256, 64, 2048, "inputs"),
        frames=_int(inputs, "frames", 16, 2, 600, "inputs"),
        frame_count=_int(sampling, "frame_count", 8, 1, 300, "sampling"),
        threshold=float(threshold), bootstrap=_int(document, "bootstrap", 1000, 0, 100000, "run"),
        seed=_int(document, "seed", 0, 0, 2**31 - 1, "run"),
    )


def load(path: str | pathlib.Path, data_dir: pathlib.Path | None = None) -> RunConfig:
    try:
        document = yaml.safe_load(pathlib.Path(path).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    return parse(document, data_dir)
