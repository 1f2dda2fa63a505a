"""The model registry, in the object store, for every kind of model the platform serves.

Layout in the models bucket:
    registry/{name}/model.json                         kind, the serving version, the history of changes
    registry/{name}/versions/{version}/files/...       the model's files (a SavedModel, a checkpoint, ...)
    registry/{name}/versions/{version}/card.json       the model card: metrics, data, command, code version
A version is complete once its card exists (written last), and immutable after. `model.json` changes
only by conditional writes, so concurrent publishers never lose an update. Publishing sets the serving
version; `sync_serving` makes a TF Serving model base path hold exactly that version, which the model
server then loads without a restart; rolling back is publishing the version served before.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pathlib
import shutil
import tempfile

from dfp.storage import MODELS, NotFound, ObjectStore, PreconditionFailed

KINDS = ("detector", "animation", "face_swap", "super_resolution", "restoration")
PREFIX = "registry/"


class RegistryError(ValueError):
    """A registry request that cannot be carried out (unknown model or version, bad name or kind)."""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _check_name(name: str) -> str:
    if not name or len(name) > 63 or not all(c.isalnum() or c in "-_" for c in name) or not name[0].isalnum():
        raise RegistryError(f"model name {name!r}: 1-63 letters, digits, '-' or '_', starting with a letter or digit")
    return name


def _files(path: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    if path.is_file():
        return [(path, path.name)]
    return sorted((p, p.relative_to(path).as_posix()) for p in path.rglob("*") if p.is_file())


def _sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ModelRegistry:
    def __init__(self, store: ObjectStore):
        self._store = store

    def _model_key(self, name: str) -> str:
        return f"{PREFIX}{_check_name(name)}/model.json"

    def _version_prefix(self, name: str, version: int) -> str:
        return f"{PREFIX}{_check_name(name)}/versions/{version}/"

    def register(self, name: str, kind: str, path: str | os.PathLike, card: dict) -> int:
        """Stores a new version of `name` from a file or folder; returns its version number."""
        if kind not in KINDS:
            raise RegistryError(f"kind {kind!r} is not one of {KINDS}")
        path = pathlib.Path(path)
        if not path.exists():
            raise RegistryError(f"{path} does not exist")
        model = self._read_model(name, create_kind=kind)
        if model["kind"] != kind:
            raise RegistryError(f"{name} is a {model['kind']} model, not {kind}")
        version = self._claim_version(name)
        files = []
        for local, relative in _files(path):
            self._store.put_file(MODELS, f"{self._version_prefix(name, version)}files/{relative}", local)
            files.append({"path": relative, "sha256": _sha256(local), "size": local.stat().st_size})
        full_card = {**card, "name": name, "kind": kind, "version": version, "created": _now(), "files": files,
                     "layout": "file" if path.is_file() else "folder"}
        self._store.put_json(MODELS, f"{self._version_prefix(name, version)}card.json", full_card)
        self._update(name, lambda m: m["history"].append({"time": _now(), "action": "register", "version": version}))
        return version

    def _claim_version(self, name: str) -> int:
        version = max(self.version_numbers(name, complete_only=False), default=0) + 1
        while True:
            try:
                self._store.put_conditional(MODELS, f"{self._version_prefix(name, version)}claim", b"{}")
                return version
            except PreconditionFailed:
                version += 1

    def version_numbers(self, name: str, complete_only: bool = True) -> list[int]:
        prefix = f"{PREFIX}{_check_name(name)}/versions/"
        found = set()
        for item in self._store.list(MODELS, prefix):
            version, _, rest = item.key[len(prefix):].partition("/")
            if version.isdigit() and (rest == "card.json" or not complete_only):
                found.add(int(version))
        return sorted(found)

    def card(self, name: str, version: int) -> dict:
        try:
            return self._store.get_json(MODELS, f"{self._version_prefix(name, version)}card.json")[0]
        except NotFound:
            raise RegistryError(f"{name} has no version {version}") from None

    def model(self, name: str) -> dict:
        try:
            return self._store.get_json(MODELS, self._model_key(name))[0]
        except NotFound:
            raise RegistryError(f"no model named {name}") from None

    def models(self) -> list[str]:
        names = set()
        for item in self._store.list(MODELS, PREFIX):
            name, _, rest = item.key[len(PREFIX):].partition("/")
            if rest == "model.json":
                names.add(name)
        return sorted(names)

    def _read_model(self, name: str, create_kind: str) -> dict:
        try:
            return self.model(name)
        except RegistryError:
            fresh = {"name": name, "kind": create_kind, "serving_version": None, "history": []}
            try:
                self._store.put_conditional(MODELS, self._model_key(name), json.dumps(fresh).encode())
            except PreconditionFailed:
                pass
            return self.model(name)

    def _update(self, name: str, change) -> dict:
        for _ in range(20):
            try:
                model, etag = self._store.get_json(MODELS, self._model_key(name))
            except NotFound:
                raise RegistryError(f"no model named {name}") from None
            change(model)
            try:
                self._store.put_conditional(MODELS, self._model_key(name), json.dumps(model).encode(), if_match=etag)
                return model
            except PreconditionFailed:
                continue
        raise RuntimeError(f"{name}: too much contention to update")

    def publish(self, name: str, version: int) -> dict:
        """Makes `version` the one served."""
        self.card(name, version)

        def set_serving(model: dict) -> None:
            model["history"].append({"time": _now(), "action": "publish", "version": version,
                                     "previous": model["serving_version"]})
            model["serving_version"] = version

        return self._update(name, set_serving)

    def rollback(self, name: str, to: int | None = None) -> int:
        """Serves `to`, or else the version served before the current one; returns it."""
        model = self.model(name)
        if to is None:
            published = [h for h in model["history"] if h["action"] in ("publish", "rollback")]
            if not published or published[-1].get("previous") is None:
                raise RegistryError(f"{name} has no earlier served version to roll back to")
            to = published[-1]["previous"]
        self.card(name, to)

        def set_serving(model: dict) -> None:
            model["history"].append({"time": _now(), "action": "rollback", "version": to,
                                     "previous": model["serving_version"]})
            model["serving_version"] = to

        self._update(name, set_serving)
        return to

    def download(self, name: str, version: int, dest: str | os.PathLike) -> pathlib.Path:
        """Fetches a version's files into `dest` (a folder, or the file itself for single-file models)."""
        card = self.card(name, version)
        dest = pathlib.Path(dest)
        prefix = f"{self._version_prefix(name, version)}files/"
        for entry in card["files"]:
            target = dest if card["layout"] == "file" else dest / entry["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            self._store.download_file(MODELS, prefix + entry["path"], target)
            if _sha256(target) != entry["sha256"]:
                raise RegistryError(f"{name} v{version}: {entry['path']} does not match its recorded sha256")
        return dest


def sync_serving(registry: ModelRegistry, base_path: str | os.PathLike, kind: str = "detector") -> dict[str, int | None]:
    """Makes `<base>/<name>/` hold exactly the serving version of every `kind` model; returns it per model.

    A new version is downloaded beside its final place and renamed in, so a model server polling the
    base path sees it whole; versions no longer served are removed after, so the server switches to
    the served one (TF Serving's "latest" policy) without a restart.
    """
    base_path = pathlib.Path(base_path)
    serving = {}
    for name in registry.models():
        model = registry.model(name)
        if model["kind"] != kind:
            continue
        version = model["serving_version"]
        serving[name] = version
        model_dir = base_path / name
        model_dir.mkdir(parents=True, exist_ok=True)
        if version is not None and not (model_dir / str(version)).is_dir():
            staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
            try:
                registry.download(name, version, staging / "model")
                os.rename(staging / "model", model_dir / str(version))
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        for other in model_dir.iterdir():
            if other.name.isdigit() and int(other.name) != version:
                shutil.rmtree(other)
    return serving
