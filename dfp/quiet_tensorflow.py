"""Imports TensorFlow without its native start-up lines on the terminal.

TensorFlow's C++ runtime logs through absl before absl's logging is initialised, so those lines
(oneDNN notes, "Could not find cuda drivers", "failed call to cuInit") go straight to file descriptor
2 whatever TF_CPP_MIN_LOG_LEVEL says; a user reads them as a failure. They are all written while the
library loads and its devices are first listed, so standard error is pointed at /dev/null for just
that moment. DFP_DEBUG=1 keeps them.

Triton (which torch loads) is imported first when installed: its LLVM clashes with TensorFlow's when
TensorFlow is loaded first (see dfp.faces), and every process that may use both comes through here.
"""

from __future__ import annotations

import contextlib
import os

_imported = False


@contextlib.contextmanager
def _native_stderr_silenced():
    if os.environ.get("DFP_DEBUG") == "1":
        yield
        return
    saved_stderr = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        os.close(devnull)


def import_tensorflow() -> None:
    """Loads TensorFlow and lists its devices once per process, with native stderr silenced."""
    global _imported
    if _imported:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with contextlib.suppress(ImportError):
        import triton  # noqa: F401
    with _native_stderr_silenced():
        import tensorflow as tf

        tf.config.list_physical_devices()
    _imported = True
