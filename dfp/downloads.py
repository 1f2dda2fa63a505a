"""Downloads files with a pinned SHA-256, atomically: a file is in place verified, or not at all."""

from __future__ import annotations

import hashlib
import os
import pathlib
import shutil
import tempfile

import requests


class ChecksumMismatch(ValueError):
    """The bytes fetched do not hash to the pinned SHA-256."""


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _install(temporary: pathlib.Path, dest: pathlib.Path, sha256: str, origin: str) -> None:
    found = sha256_of(temporary)
    if found != sha256:
        raise ChecksumMismatch(f"{origin}: SHA-256 is {found}, expected {sha256}; file discarded")
    os.replace(temporary, dest)


def fetch(url: str, sha256: str, dest: str | os.PathLike, timeout_s: float = 60.0) -> pathlib.Path:
    """Downloads `url` to `dest` and checks it; raises ChecksumMismatch or requests' errors."""
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as f:
        temporary = pathlib.Path(f.name)
        try:
            with requests.get(url, stream=True, timeout=timeout_s) as response:
                response.raise_for_status()
                for block in response.iter_content(1 << 20):
                    f.write(block)
            f.close()
            _install(temporary, dest, sha256, url)
        finally:
            temporary.unlink(missing_ok=True)
    return dest


def copy_verified(source: str | os.PathLike, sha256: str, dest: str | os.PathLike) -> pathlib.Path:
    """Copies a local file to `dest` if it hashes to `sha256`."""
    dest = pathlib.Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=dest.parent, prefix=f".{dest.name}.", delete=False) as f:
        temporary = pathlib.Path(f.name)
    try:
        shutil.copyfile(source, temporary)
        _install(temporary, dest, sha256, str(source))
    finally:
        temporary.unlink(missing_ok=True)
    return dest
