"""Settings read from environment variables, each with a documented default.

Every server and the CLI build their settings here and nowhere else, so that one variable means the
same thing everywhere. The table in the README lists them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _env_parsed(name: str, default, parse, kind: str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError:
        raise ValueError(f"{name} must be {kind}, got {raw!r}") from None


def _env_int(name: str, default: int) -> int:
    return _env_parsed(name, default, int, "an integer")


def _env_float(name: str, default: float) -> float:
    return _env_parsed(name, default, float, "a number")


def _parse_bool(raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _env_bool(name: str, default: bool) -> bool:
    return _env_parsed(name, default, _parse_bool, "true or false")


def shared_dir() -> pathlib.Path:
    """The folder of shared test data and weights (DFP_SHARED_DIR, default ../shared of the repo)."""
    default = pathlib.Path(__file__).resolve().parent.parent.parent / "shared"
    return pathlib.Path(_env("DFP_SHARED_DIR", str(default)))


def cache_dir() -> pathlib.Path:
    """Where downloaded and exported models are kept (DFP_CACHE_DIR, default ~/.cache/dfp)."""
    return pathlib.Path(_env("DFP_CACHE_DIR", str(pathlib.Path.home() / ".cache" / "dfp")))


@dataclasses.dataclass(frozen=True)
class StorageSettings:
    endpoint: str
    access_key: str
    secret_key: str
    secure: bool
    bucket_prefix: str
    region: str

    @classmethod
    def from_env(cls) -> "StorageSettings":
        return cls(
            endpoint=_env("DFP_S3_ENDPOINT", "127.0.0.1:9000"),
            access_key=_env("DFP_S3_ACCESS_KEY", ""),
            secret_key=_env("DFP_S3_SECRET_KEY", ""),
            secure=_env_bool("DFP_S3_SECURE", False),
            bucket_prefix=_env("DFP_BUCKET_PREFIX", "dfp"),
            region=_env("DFP_S3_REGION", "us-east-1"),
        )


@dataclasses.dataclass(frozen=True)
class AdmissionSettings:
    """How many calls a server runs at once and how many wait (see dfp.admission). ``max_active``
    0 means 8 per core this process may use: a gateway call spends most of its time waiting on
    storage or on the model server, whose batches fill only when enough calls are in flight at once
    (fewer starved its batching), while more than that only crowd the cores."""

    max_active: int
    max_queued: int
    max_wait_s: float

    @classmethod
    def from_env(cls, prefix: str) -> "AdmissionSettings":
        return cls(
            max_active=_env_int(f"{prefix}_MAX_ACTIVE_CALLS", 0),
            max_queued=_env_int(f"{prefix}_MAX_QUEUED_CALLS", 64),
            max_wait_s=_env_float(f"{prefix}_MAX_QUEUE_WAIT_S", 2.0),
        )

    def queue(self, name: str):
        from dfp.admission import AdmissionQueue
        from dfp.cpus import available_cpus

        return AdmissionQueue(self.max_active or 8 * available_cpus(), self.max_queued, self.max_wait_s, name)


@dataclasses.dataclass(frozen=True)
class LimitSettings:
    max_upload_bytes: int
    max_inline_image_bytes: int
    max_image_pixels: int
    max_video_seconds: float
    max_video_pixels: int
    default_retention_days: float
    max_retention_days: float

    @classmethod
    def from_env(cls) -> "LimitSettings":
        return cls(
            max_upload_bytes=_env_int("DFP_MAX_UPLOAD_BYTES", 512 * 1024 * 1024),
            max_inline_image_bytes=_env_int("DFP_MAX_INLINE_IMAGE_BYTES", 4 * 1024 * 1024),
            max_image_pixels=_env_int("DFP_MAX_IMAGE_PIXELS", 50_000_000),
            max_video_seconds=_env_float("DFP_MAX_VIDEO_SECONDS", 600.0),
            max_video_pixels=_env_int("DFP_MAX_VIDEO_PIXELS", 3840 * 2160),
            default_retention_days=_env_float("DFP_DEFAULT_RETENTION_DAYS", 30.0),
            max_retention_days=_env_float("DFP_MAX_RETENTION_DAYS", 365.0),
        )


@dataclasses.dataclass(frozen=True)
class Quota:
    """What one team may use; the defaults for every team (see dfp.quotas for overrides)."""

    requests_per_minute: float
    concurrent_jobs: int
    stored_bytes: int

    @classmethod
    def from_env(cls) -> "Quota":
        return cls(
            requests_per_minute=_env_float("DFP_QUOTA_REQUESTS_PER_MINUTE", 600.0),
            concurrent_jobs=_env_int("DFP_QUOTA_CONCURRENT_JOBS", 8),
            stored_bytes=_env_int("DFP_QUOTA_STORED_BYTES", 50 * 1024**3),
        )


@dataclasses.dataclass(frozen=True)
class GatewaySettings:
    listen: str
    detector_target: str
    default_detector: str
    auth_cache_s: float
    tls_cert: str
    tls_key: str
    health_listen: str
    metrics_listen: str
    detector_timeout_s: float
    creator_target: str
    default_animation_model: str
    creator_timeout_s: float
    enhancer_target: str
    # The longest one enhancement may take (the deadline of the call to the enhancer).
    enhancer_timeout_s: float
    animation_batch_size: int
    animation_input_size: int
    job_workers: int
    job_lease_s: float
    job_poll_s: float
    storage: StorageSettings
    limits: LimitSettings
    admission: AdmissionSettings
    # PEM files of the C2PA signing identity for generated media; empty: no Content Credentials.
    c2pa_cert: str = ""
    c2pa_key: str = ""

    @classmethod
    def from_env(cls) -> "GatewaySettings":
        return cls(
            listen=_env("DFP_GATEWAY_LISTEN", "127.0.0.1:50051"),
            detector_target=_env("DFP_DETECTOR_TARGET", "127.0.0.1:8500"),
            default_detector=_env("DFP_DEFAULT_DETECTOR", "detector"),
            auth_cache_s=_env_float("DFP_AUTH_CACHE_S", 10.0),
            tls_cert=_env("DFP_TLS_CERT", ""),
            tls_key=_env("DFP_TLS_KEY", ""),
            health_listen=_env("DFP_HEALTH_LISTEN", ""),
            metrics_listen=_env("DFP_METRICS_LISTEN", ""),
            detector_timeout_s=_env_float("DFP_DETECTOR_TIMEOUT_S", 30.0),
            creator_target=_env("DFP_CREATOR_TARGET", "127.0.0.1:7070"),
            default_animation_model=_env("DFP_DEFAULT_ANIMATION_MODEL", "fomm"),
            creator_timeout_s=_env_float("DFP_CREATOR_TIMEOUT_S", 120.0),
            enhancer_target=_env("DFP_ENHANCER_TARGET", "127.0.0.1:50053"),
            enhancer_timeout_s=_env_float("DFP_ENHANCER_TIMEOUT_S", 3600.0),
            animation_batch_size=_env_int("DFP_ANIMATION_BATCH_SIZE", 16),
            animation_input_size=_env_int("DFP_ANIMATION_INPUT_SIZE", 256),
            job_workers=_env_int("DFP_JOB_WORKERS", 2),
            job_lease_s=_env_float("DFP_JOB_LEASE_S", 30.0),
            job_poll_s=_env_float("DFP_JOB_POLL_S", 0.5),
            storage=StorageSettings.from_env(),
            limits=LimitSettings.from_env(),
            admission=AdmissionSettings.from_env("DFP_GATEWAY"),
            c2pa_cert=_env("DFP_C2PA_CERT", ""),
            c2pa_key=_env("DFP_C2PA_KEY", ""),
        )


@dataclasses.dataclass(frozen=True)
class ModelServerSettings:
    listen: str
    model_base_path: pathlib.Path
    poll_wait_s: float
    max_batch_size: int
    batch_timeout_micros: int
    num_batch_threads: int
    metrics_listen: str
    # Plaintext health checking only, for probes when the service port speaks mutual TLS.
    health_listen: str = ""

    @classmethod
    def from_env(cls) -> "ModelServerSettings":
        return cls(
            listen=_env("DFP_MODEL_SERVER_LISTEN", "127.0.0.1:8500"),
            model_base_path=pathlib.Path(_env("DFP_MODEL_BASE_PATH", str(cache_dir() / "serving"))),
            poll_wait_s=_env_float("DFP_MODEL_POLL_WAIT_S", 2.0),
            max_batch_size=_env_int("DFP_MAX_BATCH_SIZE", 32),
            batch_timeout_micros=_env_int("DFP_BATCH_TIMEOUT_MICROS", 2000),
            num_batch_threads=_env_int("DFP_NUM_BATCH_THREADS", 2),
            metrics_listen=_env("DFP_METRICS_LISTEN", ""),
            health_listen=_env("DFP_HEALTH_LISTEN", ""),
        )


@dataclasses.dataclass(frozen=True)
class EnhancerSettings:
    listen: str
    # "cuda", "cpu", or empty for cuda when present.
    device: str
    # Default tile side (input pixels) and context; a request may ask for another tile.
    tile: int
    tile_pad: int
    # Tiles (or untiled frames) per forward pass.
    batch_size: int
    # fp16 on a GPU.
    half: bool
    # Enhancements run at once; further requests wait (within their deadline).
    concurrency: int
    max_output_pixels: int
    metrics_listen: str
    storage: StorageSettings
    limits: LimitSettings
    # The published DFDNet (checkpoint, component dictionary, optional VGG19) for the "face" model;
    # empty: the platform's own face restoration network.
    dfdnet_checkpoint: str = ""
    dfdnet_dictionary: str = ""
    vgg19: str = ""
    # Plaintext health checking only, for probes when the service port speaks mutual TLS.
    health_listen: str = ""

    @classmethod
    def from_env(cls) -> "EnhancerSettings":
        return cls(
            listen=_env("DFP_ENHANCER_LISTEN", "127.0.0.1:50053"),
            device=_env("DFP_ENHANCER_DEVICE", ""),
            tile=_env_int("DFP_ENHANCER_TILE", 256),
            tile_pad=_env_int("DFP_ENHANCER_TILE_PAD", 16),
            batch_size=_env_int("DFP_ENHANCER_BATCH_SIZE", 4),
            half=_env_bool("DFP_ENHANCER_HALF", True),
            concurrency=_env_int("DFP_ENHANCER_CONCURRENCY", 1),
            max_output_pixels=_env_int("DFP_ENHANCER_MAX_OUTPUT_PIXELS", 200_000_000),
            metrics_listen=_env("DFP_METRICS_LISTEN", ""),
            storage=StorageSettings.from_env(),
            limits=LimitSettings.from_env(),
            dfdnet_checkpoint=_env("DFP_DFDNET_CHECKPOINT", ""),
            dfdnet_dictionary=_env("DFP_DFDNET_DICTIONARY", ""),
            vgg19=_env("DFP_VGG19", ""),
            health_listen=_env("DFP_HEALTH_LISTEN", ""),
        )


@dataclasses.dataclass(frozen=True)
class ClientSettings:
    gateway: str
    timeout_s: float
    token: str
    tls_ca: str

    @classmethod
    def from_env(cls) -> "ClientSettings":
        return cls(
            gateway=_env("DFP_GATEWAY", "127.0.0.1:50051"),
            timeout_s=_env_float("DFP_TIMEOUT_S", 60.0),
            token=_env("DFP_TOKEN", ""),
            tls_ca=_env("DFP_TLS_CA", ""),
        )
