"""What every creator TorchServe handler shares: the device a worker runs on, and the module-level
``handle`` entry point TorchServe calls (initialise once, then answer each batch)."""

from __future__ import annotations

import torch


def worker_device(context) -> str:
    """The GPU TorchServe gave this worker, else the CPU."""
    gpu_id = context.system_properties.get("gpu_id")
    return f"cuda:{gpu_id}" if torch.cuda.is_available() and gpu_id is not None else "cpu"


def entry_point(service):
    """The ``handle(data, context)`` function for a handler object with ``initialized``,
    ``initialize(context)`` and ``handle(data, context)``."""

    def handle(data, context):
        if not service.initialized:
            service.initialize(context)
        if data is None:
            return None
        return service.handle(data, context)

    return handle
