"""Keeps TorchServe serving the published version of every face swap model in the model registry.

Each pass reads the registry; a model whose serving version is not yet loaded is downloaded,
loaded once on the CPU (a corrupt or mismatched checkpoint is refused here, with the reason in the
log, and not retried until another version is published), archived, registered with TorchServe and
made its default version. The version served before stays loaded, so jobs that started on it finish;
older ones are unregistered. Publishing or rolling back in the registry therefore reaches the
service within one poll interval, without a restart."""

from __future__ import annotations

import logging
import pathlib
import shutil
import subprocess
import threading

import grpc

from dfp.registry import ModelRegistry, RegistryError
from services.creator import swap_model
from services.creator.checkpoints import CheckpointMismatch
from services.creator.serving.torchserve_process import TorchServe, build_swap_archive

log = logging.getLogger(__name__)

KIND = "face_swap"
KEEP_VERSIONS = 2


class SwapModelSync:
    def __init__(self, registry: ModelRegistry, torchserve: TorchServe, workdir: pathlib.Path):
        self._registry = registry
        self._torchserve = torchserve
        self._workdir = pathlib.Path(workdir)
        self.loaded: dict[str, list[int]] = {}  # name -> versions loaded, the default last
        self.refused: dict[tuple[str, int], str] = {}

    def sync_once(self) -> dict[str, int]:
        """One pass; returns the default version per face swap model."""
        for name in self._registry.models():
            try:
                model = self._registry.model(name)
            except RegistryError:
                continue
            version = model["serving_version"]
            if model["kind"] != KIND or version is None or (name, version) in self.refused:
                continue
            loaded = self.loaded.setdefault(name, [])
            if loaded and loaded[-1] == version:
                continue
            try:
                self._serve(name, version, already_loaded=version in loaded)
            except (RegistryError, CheckpointMismatch, OSError, subprocess.CalledProcessError, grpc.RpcError) as exc:
                reason = exc.details() if isinstance(exc, grpc.RpcError) else str(exc)
                self.refused[(name, version)] = reason
                log.error("face swap model %s version %d cannot be served: %s", name, version, reason)
                continue
            if version in loaded:
                loaded.remove(version)
            loaded.append(version)
            while len(loaded) > KEEP_VERSIONS:
                self._retire(name, loaded.pop(0))
            log.info("face swap model %s now serves version %d", name, version)
        return {name: versions[-1] for name, versions in self.loaded.items() if versions}

    def _serve(self, name: str, version: int, already_loaded: bool) -> None:
        if not already_loaded:
            release = self._workdir / name / str(version)
            shutil.rmtree(release, ignore_errors=True)
            self._registry.download(name, version, release)
            swap_model.load_model(release / swap_model.SETTINGS, release / swap_model.CHECKPOINT)
            archive = build_swap_archive(release, self._torchserve.model_store, name, str(version))
            self._torchserve.register(archive.name, name)
        self._torchserve.set_default(name, str(version))

    def _retire(self, name: str, version: int) -> None:
        try:
            self._torchserve.unregister(name, str(version))
        except grpc.RpcError as exc:
            log.warning("could not unregister %s version %d: %s", name, version, exc.details())
        (self._torchserve.model_store / f"{name}.v{version}.mar").unlink(missing_ok=True)
        shutil.rmtree(self._workdir / name / str(version), ignore_errors=True)

    def run(self, stop: threading.Event, interval_s: float) -> None:
        """Sync every ``interval_s`` until ``stop`` is set; a failing pass is logged and retried."""
        while not stop.is_set():
            try:
                self.sync_once()
            except Exception:
                log.exception("registry sync pass failed; retrying in %.0f s", interval_s)
            stop.wait(interval_s)
