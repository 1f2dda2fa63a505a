"""Weights the platform knows without being told: the published MesoNet files and its own default.

`pull` downloads the MesoNet files from their published addresses and checks each hash; when the
network does not allow it, it takes them from the shared data folder (DFP_SHARED_DIR) if the hashes
match there. The platform's default detector is the model it trained itself, committed under
`models/detector/default/` with its card (architecture, calibration, metrics).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import pathlib

import requests

from dfp import config, downloads

log = logging.getLogger(__name__)

DEFAULT_DETECTOR_DIR = pathlib.Path(__file__).resolve().parents[2] / "models" / "detector" / "default"
DEFAULT_DETECTOR_NAME = "detector"
MESONET_BASE_URL = "https://raw.githubusercontent.com/DariusAf/MesoNet/master/weights"


@dataclasses.dataclass(frozen=True)
class WeightFile:
    filename: str
    arch: str
    sha256: str


MESONET = (
    WeightFile("Meso4_DF.h5", "meso4", "036ed30d04ffd9c7506f825b97c86aa64915f5818931da96817b169aad790af5"),
    WeightFile("Meso4_F2F.h5", "meso4", "bcfda015d217b9f8d6557693edbdf9f4e79cfd22672541968dd0e2954462b5d7"),
    WeightFile("MesoInception_DF.h5", "mesoinception4", "234586d40058e76ef8b6f27ca4b63c06e31c2a5a69c0d8ba6f30b1468ab7bafa"),
    WeightFile("MesoInception_F2F.h5", "mesoinception4", "d4533ac8a3197dc35c47405d23d99e888c1d0135e267e03540c7451feaccff3f"),
)
DEFAULT_WEIGHTS = {"meso4": "Meso4_DF.h5", "mesoinception4": "MesoInception_DF.h5"}


def weights_dir() -> pathlib.Path:
    return config.cache_dir() / "weights" / "mesonet"


def shared_weights_dir() -> pathlib.Path:
    return config.shared_dir() / "data" / "weights" / "mesonet"


def pull(base_url: str = MESONET_BASE_URL, dest_dir: pathlib.Path | None = None, offline: bool = False) -> list[tuple[pathlib.Path, str]]:
    """Fetches every MesoNet file into `dest_dir`; returns (path, where it came from) per file."""
    dest_dir = dest_dir or weights_dir()
    results = []
    for weight in MESONET:
        dest = dest_dir / weight.filename
        if dest.exists() and downloads.sha256_of(dest) == weight.sha256:
            results.append((dest, "already present"))
            continue
        if not offline:
            url = f"{base_url.rstrip('/')}/{weight.filename}"
            try:
                downloads.fetch(url, weight.sha256, dest)
                results.append((dest, url))
                continue
            except downloads.ChecksumMismatch:
                raise
            except requests.RequestException as exc:
                # One unreachable address is enough to know: the other files come from the same place.
                offline = True
                log.warning("cannot download from %s (%s); using %s", base_url, type(exc).__name__, shared_weights_dir())
        local = shared_weights_dir() / weight.filename
        if not local.exists():
            raise FileNotFoundError(f"{weight.filename}: not downloadable and not in {shared_weights_dir()}")
        downloads.copy_verified(local, weight.sha256, dest)
        results.append((dest, str(local)))
    return results


def default_weights(arch: str = "meso4") -> pathlib.Path:
    """The weight file the platform uses for `arch` when none is given: pulled copy, else shared data."""
    filename = DEFAULT_WEIGHTS[arch]
    for folder in (weights_dir(), shared_weights_dir()):
        if (folder / filename).exists():
            return folder / filename
    raise FileNotFoundError(f"no {filename}: run `dfp models pull mesonet` first")


@dataclasses.dataclass(frozen=True)
class DefaultDetector:
    weights: pathlib.Path
    arch: str
    calibration: dict
    card: dict


def default_detector(folder: pathlib.Path = DEFAULT_DETECTOR_DIR) -> DefaultDetector:
    """The platform's own default detector: its weights, architecture and calibration."""
    card_path = folder / "card.json"
    if not card_path.exists():
        raise FileNotFoundError(f"the default detector is missing from {folder}")
    card = json.loads(card_path.read_text())
    return DefaultDetector(folder / "weights.h5", card["architecture"], card["calibration"], card)
