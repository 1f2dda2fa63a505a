"""Loads SavedModel versions from a TF Serving model base path and keeps the newest one served.

Like TF Serving's file-system source with the "latest" version policy: the base path of each model
is polled every `poll_wait_s`; when a newer version directory appears it is loaded, warmed up with
one forward pass and then swapped in, and the older one unloaded. When the newest version is removed
(a rollback), the next newest is loaded the same way. Nothing is restarted.
"""

from __future__ import annotations

import dataclasses
import logging
import pathlib
import threading

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2, saved_model_pb2

from services.detector.export import SIGNATURE
from services.detector.model_server.batching import Batcher

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingParameters:
    max_batch_size: int = 32
    batch_timeout_micros: int = 2000
    num_batch_threads: int = 2


class Servable:
    """One loaded model version: its signatures, and a batcher in front of the default signature."""

    def __init__(self, name: str, version: int, path: pathlib.Path, batching: BatchingParameters | None):
        self.name = name
        self.version = version
        self.path = path
        self._loaded = tf.saved_model.load(str(path))
        saved_model = saved_model_pb2.SavedModel()
        saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
        self.signature_defs: dict[str, meta_graph_pb2.SignatureDef] = dict(saved_model.meta_graphs[0].signature_def)
        self._functions = {key: self._loaded.signatures[key] for key in self._loaded.signatures}
        default = self.signature_defs[SIGNATURE]
        (self.batched_input,) = default.inputs.keys()
        self._batcher = None
        if batching is not None:
            self._batcher = Batcher(
                self._run_default,
                max_batch_size=batching.max_batch_size,
                batch_timeout_micros=batching.batch_timeout_micros,
                num_batch_threads=batching.num_batch_threads,
            )
        self._warm_up()

    def _warm_up(self) -> None:
        spec = self.signature_defs[SIGNATURE].inputs[self.batched_input]
        shape = [1 if d.size < 0 else d.size for d in spec.tensor_shape.dim]
        self.run(SIGNATURE, {self.batched_input: np.zeros(shape, tf.as_dtype(spec.dtype).as_numpy_dtype)})

    def _run_default(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        outputs = self._functions[SIGNATURE](**{self.batched_input: tf.constant(batch)})
        return _stack_outputs({k: v.numpy() for k, v in outputs.items()})

    def run(self, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Runs a signature; the default one goes through the batcher when batching is on."""
        if signature == SIGNATURE and self._batcher is not None and set(inputs) == {self.batched_input}:
            stacked = self._batcher.submit(inputs[self.batched_input]).result()
            return _unstack_outputs(stacked)
        function = self._functions[signature]
        outputs = function(**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}

    def unload(self) -> None:
        if self._batcher is not None:
            self._batcher.close()


# The batcher splits and merges one array along axis 0; several outputs travel as a record array.
def _stack_outputs(outputs: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(outputs.values())))
    dtype = [(k, v.dtype, v.shape[1:]) for k, v in outputs.items()]
    packed = np.empty(n, dtype=dtype)
    for key, value in outputs.items():
        packed[key] = value
    return packed


def _unstack_outputs(packed: np.ndarray) -> dict[str, np.ndarray]:
    return {key: np.ascontiguousarray(packed[key]) for key in packed.dtype.names}


@dataclasses.dataclass
class ModelState:
    base_path: pathlib.Path
    servable: Servable | None = None
    unloaded_versions: list[int] = dataclasses.field(default_factory=list)
    failed_version: int | None = None
    error: str = ""


class ServableManager:
    """Serves the newest version of each configured model; polls for changes in a thread."""

    def __init__(self, models: dict[str, pathlib.Path], batching: BatchingParameters | None, poll_wait_s: float = 2.0):
        self._batching = batching
        self._poll_wait_s = poll_wait_s
        self._lock = threading.RLock()
        self._models: dict[str, ModelState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reload_config(models)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll_loop, name="model-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        with self._lock:
            for state in self._models.values():
                if state.servable is not None:
                    state.servable.unload()

    def reload_config(self, models: dict[str, pathlib.Path]) -> None:
        """Serves exactly `models` ({name: base path}); loads new ones now, unloads dropped ones."""
        with self._lock:
            for name in set(self._models) - set(models):
                state = self._models.pop(name)
                if state.servable is not None:
                    state.servable.unload()
            for name, base_path in models.items():
                state = self._models.get(name)
                if state is None or state.base_path != pathlib.Path(base_path):
                    if state is not None and state.servable is not None:
                        state.servable.unload()
                    self._models[name] = ModelState(pathlib.Path(base_path))
        self.poll_once()

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted(self._models)

    def get(self, name: str, version: int | None = None) -> Servable | None:
        with self._lock:
            state = self._models.get(name)
            if state is None or state.servable is None:
                return None
            if version is not None and state.servable.version != version:
                return None
            return state.servable

    def status(self, name: str) -> ModelState | None:
        with self._lock:
            return self._models.get(name)

    def poll_once(self) -> None:
        with self._lock:
            items = list(self._models.items())
        for name, state in items:
            newest = _newest_version(state.base_path)
            current = state.servable.version if state.servable else None
            if newest is None or newest == current or newest == state.failed_version:
                continue
            try:
                servable = Servable(name, newest, state.base_path / str(newest), self._batching)
            except Exception as exc:  # a broken version must not take the served one down
                log.error("model %s version %s failed to load: %s", name, newest, exc)
                state.failed_version = newest
                state.error = f"version {newest} failed to load: {exc}"
                continue
            with self._lock:
                if self._models.get(name) is not state:
                    servable.unload()
                    continue
                previous, state.servable = state.servable, servable
                state.error, state.failed_version = "", None
            if previous is not None:
                state.unloaded_versions.append(previous.version)
                previous.unload()
            log.info("model %s: serving version %d (was %s)", name, newest, current)

    def _poll_loop(self) -> None:
        while not self._stop.wait(self._poll_wait_s):
            try:
                self.poll_once()
            except Exception:
                log.exception("model poll failed")


def _newest_version(base_path: pathlib.Path) -> int | None:
    if not base_path.is_dir():
        return None
    versions = [
        int(p.name) for p in base_path.iterdir() if p.name.isdigit() and (p / "saved_model.pb").is_file()
    ]
    return max(versions) if versions else None
