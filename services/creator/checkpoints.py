"""FOMM configs and checkpoints: the one place that puts a config and a checkpoint together.

A config is the published YAML layout (``model_params`` with ``common_params``,
``kp_detector_params`` and ``generator_params``); a checkpoint is the published ``.pth.tar`` layout,
a dict with ``generator`` and ``kp_detector`` state dicts in the original module names. Both load
strictly: an unknown config key raises TypeError from the constructor, and a state dict that differs
from the network in any key or shape is refused with the differences listed.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pickle
import zipfile

import torch
import yaml

from services.creator.archs.fomm_generator_arch import OcclusionAwareGenerator
from services.creator.archs.fomm_keypoint_detector_arch import KPDetector

log = logging.getLogger(__name__)

# Wrappers that training code around the world adds to state-dict keys.
_WRAPPER_PREFIXES = ("module.",)


class CheckpointMismatch(ValueError):
    """A state dict does not fit the network its config builds, or the file is not a checkpoint."""


def read_checkpoint(path: str | os.PathLike) -> dict:
    """A checkpoint's tensors (no pickled code); a truncated or corrupt file raises CheckpointMismatch."""
    try:
        checkpoint = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (RuntimeError, EOFError, ValueError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise CheckpointMismatch(f"{path} is not a readable PyTorch checkpoint (truncated or corrupt?): "
                                 f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatch(f"{path}: a checkpoint must hold a dict of state dicts, got {type(checkpoint).__name__}")
    return checkpoint


@dataclasses.dataclass
class FommModel:
    config: dict
    generator: OcclusionAwareGenerator
    kp_detector: KPDetector

    @property
    def frame_size(self) -> int:
        """The square side the networks were trained at (``dataset_params.frame_shape``)."""
        shape = self.config.get("dataset_params", {}).get("frame_shape", [256, 256, 3])
        return int(shape[0])

    def to(self, device: torch.device | str) -> "FommModel":
        self.generator.to(device)
        self.kp_detector.to(device)
        return self

    def eval(self) -> "FommModel":
        self.generator.eval()
        self.kp_detector.eval()
        return self


def load_config(path: str | os.PathLike) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    if not isinstance(config, dict) or not isinstance(config.get("model_params"), dict):
        raise ValueError(f"{path}: not a FOMM config (no model_params mapping)")
    return config


def build_networks(config: dict) -> FommModel:
    """Generator and keypoint detector from ``config['model_params']``, as the published demo builds them."""
    params = config["model_params"]
    for section in ("common_params", "kp_detector_params", "generator_params"):
        if not isinstance(params.get(section), dict):
            raise ValueError(f"config model_params.{section} is missing or not a mapping")
    common = params["common_params"]
    generator = OcclusionAwareGenerator(**params["generator_params"], **common)
    kp_detector = KPDetector(**params["kp_detector_params"], **common)
    return FommModel(config=config, generator=generator, kp_detector=kp_detector)


def _unwrap(state_dict: dict) -> dict:
    unwrapped = {}
    for key, value in state_dict.items():
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        unwrapped[key] = value
    return unwrapped


def load_state_strict(network: torch.nn.Module, state_dict: dict, what: str) -> None:
    """Load with every key and shape matching, else raise listing what differs."""
    state_dict = _unwrap(state_dict)
    expected = network.state_dict()
    # Checkpoints saved before torch 0.4.1 lack BatchNorm's step counter, which inference never reads.
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in state_dict:
            state_dict[key] = expected[key]
    missing = sorted(k for k in expected if k not in state_dict)
    unexpected = sorted(k for k in state_dict if k not in expected)
    wrong_shape = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs network {tuple(expected[k].shape)}"
        for k in state_dict
        if k in expected and tuple(state_dict[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong_shape:
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", wrong_shape)):
            for key in keys:
                log.error("%s %s: %s", what, label, key)
        raise CheckpointMismatch(
            f"{what} state dict does not fit the config: {len(missing)} missing "
            f"({', '.join(missing[:5])}), {len(unexpected)} unexpected ({', '.join(unexpected[:5])}), "
            f"{len(wrong_shape)} of another shape ({'; '.join(wrong_shape[:3])})"
        )
    network.load_state_dict(state_dict, strict=True)


def load_model(config_path: str | os.PathLike, checkpoint_path: str | os.PathLike) -> FommModel:
    """Config + published-format checkpoint -> networks in eval mode on the CPU."""
    model = build_networks(load_config(config_path))
    checkpoint = read_checkpoint(checkpoint_path)
    if "generator" not in checkpoint or "kp_detector" not in checkpoint:
        raise CheckpointMismatch(f"{checkpoint_path}: not a FOMM checkpoint (needs 'generator' and 'kp_detector')")
    load_state_strict(model.generator, checkpoint["generator"], "generator")
    load_state_strict(model.kp_detector, checkpoint["kp_detector"], "kp_detector")
    return model.eval()


def save_checkpoint(model: FommModel, path: str | os.PathLike, **extra) -> None:
    """Write the published layout (readable by the original code), atomically."""
    payload = {"generator": model.generator.state_dict(), "kp_detector": model.kp_detector.state_dict(), **extra}
    tmp = f"{os.fspath(path)}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)
