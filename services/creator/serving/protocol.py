"""The creator models' request and response bodies, shared by the TorchServe handlers and their
clients. A body is an uncompressed .npz (no pickles).

Animation (FOMM):
  request:  source (H,W,3) uint8, initial (H,W,3) uint8 (the initial driving frame),
            driving (B,H,W,3) uint8, mode () unicode: "relative" or "absolute",
            optionally full_resolution () bool;
  response: prediction (B,S,S,3) uint8, at the model's frame size S, or with full_resolution at the
            source's own size.
  Frames of any size are accepted; the handler resizes them to the model's frame size. With
  full_resolution the source is a square crop (a side that is a multiple of 8, at most
  FULL_RESOLUTION_MAX_SIDE) animated at its own size, see pipelines/full_resolution.py.

Face swap (autoencoder):
  request:  faces (B,S,S,3) uint8 aligned faces at the model's resolution S, to () unicode: the
            identity whose decoder draws them ("a" or "b");
  response: faces (B,S,S,3) uint8 swapped faces, masks (B,S,S) uint8 predicted face masks."""

from __future__ import annotations

import dataclasses
import io

import numpy as np

MODES = ("relative", "absolute")
MAX_BATCH = 64
MAX_SIDE = 1024
FULL_RESOLUTION_MAX_SIDE = 512


class BadRequest(ValueError):
    """The body is not a valid animation request; the message says what is wrong."""


@dataclasses.dataclass
class AnimationRequest:
    source: np.ndarray
    initial: np.ndarray
    driving: np.ndarray
    mode: str
    full_resolution: bool = False


def _frame_check(name: str, array: np.ndarray, ndim: int) -> None:
    if array.dtype != np.uint8 or array.ndim != ndim or array.shape[-1] != 3:
        raise BadRequest(f"{name} must be uint8 with shape {'(B,H,W,3)' if ndim == 4 else '(H,W,3)'}, "
                         f"got {array.dtype} {array.shape}")
    if min(array.shape[-3:-1]) < 8 or max(array.shape[-3:-1]) > MAX_SIDE:
        raise BadRequest(f"{name} frames must be 8 to {MAX_SIDE} pixels on a side, got {array.shape[-3:-1]}")


def _read_npz(body: bytes | bytearray, names: set[str], optional: set[str] = frozenset()) -> dict[str, np.ndarray]:
    if not body:
        raise BadRequest("empty request body")
    try:
        with np.load(io.BytesIO(bytes(body)), allow_pickle=False) as arrays:
            missing = names - set(arrays.files)
            if missing:
                raise BadRequest(f"request lacks {', '.join(sorted(missing))}")
            return {name: arrays[name] for name in names | (optional & set(arrays.files))}
    except BadRequest:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise BadRequest(f"request body is not a readable .npz: {exc}") from None


def encode_request(request: AnimationRequest) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, source=request.source, initial=request.initial, driving=request.driving,
             mode=np.array(request.mode), full_resolution=np.array(request.full_resolution))
    return buffer.getvalue()


def decode_request(body: bytes | bytearray) -> AnimationRequest:
    arrays = _read_npz(body, {"source", "initial", "driving", "mode"}, {"full_resolution"})
    full_resolution = arrays.get("full_resolution", np.array(False))
    if full_resolution.dtype != np.bool_ or full_resolution.shape != ():
        raise BadRequest(f"full_resolution must be a bool scalar, got {full_resolution.dtype} {full_resolution.shape}")
    request = AnimationRequest(arrays["source"], arrays["initial"], arrays["driving"], str(arrays["mode"]),
                               bool(full_resolution))
    _frame_check("source", request.source, 3)
    _frame_check("initial", request.initial, 3)
    _frame_check("driving", request.driving, 4)
    if not 1 <= len(request.driving) <= MAX_BATCH:
        raise BadRequest(f"driving must hold 1 to {MAX_BATCH} frames, got {len(request.driving)}")
    if request.mode not in MODES:
        raise BadRequest(f"mode must be one of {', '.join(MODES)}, got {request.mode!r}")
    height, width = request.source.shape[:2]
    if request.full_resolution and (height != width or height % 8 or height > FULL_RESOLUTION_MAX_SIDE):
        raise BadRequest(f"a full_resolution source must be square with a side that is a multiple of 8 and at most "
                         f"{FULL_RESOLUTION_MAX_SIDE}, got {height}x{width}")
    return request


def encode_response(prediction: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, prediction=prediction)
    return buffer.getvalue()


def decode_response(body: bytes) -> np.ndarray:
    with np.load(io.BytesIO(body), allow_pickle=False) as arrays:
        return arrays["prediction"]


@dataclasses.dataclass
class SwapRequest:
    faces: np.ndarray
    to_identity: str


def encode_swap_request(request: SwapRequest) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, faces=request.faces, to=np.array(request.to_identity))
    return buffer.getvalue()


def decode_swap_request(body: bytes | bytearray, resolution: int, identities: tuple[str, ...]) -> SwapRequest:
    arrays = _read_npz(body, {"faces", "to"})
    request = SwapRequest(arrays["faces"], str(arrays["to"]))
    _frame_check("faces", request.faces, 4)
    if request.faces.shape[1:3] != (resolution, resolution):
        raise BadRequest(f"faces must be aligned at this model's resolution {resolution}x{resolution}, "
                         f"got {request.faces.shape[1]}x{request.faces.shape[2]}")
    if not 1 <= len(request.faces) <= MAX_BATCH:
        raise BadRequest(f"faces must hold 1 to {MAX_BATCH} faces, got {len(request.faces)}")
    if request.to_identity not in identities:
        raise BadRequest(f"to must be one of {', '.join(identities)}, got {request.to_identity!r}")
    return request


def encode_swap_response(faces: np.ndarray, masks: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, faces=faces, masks=masks)
    return buffer.getvalue()


def decode_swap_response(body: bytes) -> tuple[np.ndarray, np.ndarray]:
    with np.load(io.BytesIO(body), allow_pickle=False) as arrays:
        return arrays["faces"], arrays["masks"]
