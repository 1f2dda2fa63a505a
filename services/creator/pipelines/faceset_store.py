"""Face sets in the object store, so that training jobs anywhere can read them.

Layout in the models bucket:
    facesets/{name}/faces/NNNNNN.png     the aligned faces
    facesets/{name}/faceset.json         the manifest (source, consent, per face origin and transform)
The manifest is written last and only if absent, so a face set is visible whole or not at all and
never changes once pushed; a push that fails half-way leaves faces that no manifest names, which a
second push of the same name overwrites."""

from __future__ import annotations

import json
import pathlib
import shutil
import tempfile

from dfp.storage import MODELS, NotFound, ObjectStore, PreconditionFailed
from services.creator.pipelines import faceset as facesets

PREFIX = "facesets/"


def _check_name(name: str) -> str:
    if not name or len(name) > 63 or not name[0].isalnum() or not all(c.isalnum() or c in "-_" for c in name):
        raise facesets.FaceSetError(f"face set name {name!r}: 1-63 letters, digits, '-' or '_', "
                                    "starting with a letter or digit")
    return name


class FaceSetStore:
    def __init__(self, store: ObjectStore):
        self._store = store

    def push(self, folder: pathlib.Path, name: str) -> dict:
        """Uploads a local face set (which must carry consent) under ``name``; returns its manifest."""
        prefix = f"{PREFIX}{_check_name(name)}/"
        manifest, _ = facesets.load(folder)
        if self._store.exists(MODELS, f"{prefix}faceset.json"):
            raise facesets.FaceSetError(f"face set {name} already exists; face sets never change, push a new name")
        for entry in manifest["faces"]:
            self._store.put_file(MODELS, prefix + entry["file"], folder / entry["file"], content_type="image/png")
        try:
            self._store.put_conditional(MODELS, f"{prefix}faceset.json", json.dumps(manifest, indent=1).encode())
        except PreconditionFailed:
            raise facesets.FaceSetError(f"face set {name} was pushed by someone else meanwhile") from None
        return manifest

    def pull(self, name: str, out: pathlib.Path) -> dict:
        """Downloads face set ``name`` into the folder ``out`` (which must not exist yet)."""
        prefix = f"{PREFIX}{_check_name(name)}/"
        try:
            manifest = self._store.get_json(MODELS, f"{prefix}faceset.json")[0]
        except NotFound:
            raise facesets.FaceSetError(f"no face set named {name} in the object store") from None
        if out.exists():
            raise facesets.FaceSetError(f"{out} already exists; pull into a new folder")
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        try:
            for entry in manifest["faces"]:
                target = staging / entry["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                self._store.download_file(MODELS, prefix + entry["file"], target)
            (staging / "faceset.json").write_text(json.dumps(manifest, indent=1))
            staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return manifest

    def names(self) -> list[str]:
        return sorted(item.key[len(PREFIX):].split("/")[0] for item in self._store.list(MODELS, PREFIX)
                      if item.key.endswith("/faceset.json"))
