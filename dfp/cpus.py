"""How many cores this process may use, and math thread pools sized to them.

torch and TensorFlow size their thread pools by the machine's cores; in a container limited to 2 CPUs
on a 64-core node that is 64 threads per pool fighting over 2 cores, and on a small machine shared by
several services it is every process spinning up as many threads as there are cores. Each service
calls `configure_math_threads` at start: the pools get the cores this process may use (affinity and
the cgroup CPU limit, or DFP_CPUS when set), shared by the services on the same machine as
DFP_CPUS says.
"""

from __future__ import annotations

import logging
import math
import os
import pathlib
import sys

log = logging.getLogger(__name__)


def _cgroup_limit() -> float | None:
    """The CPU limit of this process's cgroup (v2 cpu.max, else v1 cfs quota), in cores; None: none."""
    v2 = pathlib.Path("/sys/fs/cgroup/cpu.max")
    try:
        if v2.exists():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = pathlib.Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        period = pathlib.Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")
        if quota.exists() and period.exists():
            value = int(quota.read_text())
            return None if value <= 0 else value / int(period.read_text())
    except (OSError, ValueError):
        return None
    return None


def available_cpus() -> int:
    """Cores this process may use: DFP_CPUS if set, else min(affinity, cgroup limit rounded up)."""
    configured = os.environ.get("DFP_CPUS", "")
    if configured:
        value = int(configured)
        if value < 1:
            raise ValueError(f"DFP_CPUS must be a positive integer, got {configured!r}")
        return value
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = _cgroup_limit()
    if limit is not None:
        cores = min(cores, max(1, math.ceil(limit)))
    return cores


def configure_math_threads(cpus: int | None = None) -> int:
    """Sizes the thread pools of torch and TensorFlow, where this process has imported them, to
    ``cpus`` (default `available_cpus`): intra-op threads = cpus, inter-op = 1 or 2. Call before the
    first model runs (TensorFlow fixes its pools then). Returns the count used."""
    cpus = cpus or available_cpus()
    if "torch" in sys.modules:
        import torch

        torch.set_num_threads(cpus)
        try:
            torch.set_num_interop_threads(min(2, cpus))
        except RuntimeError:  # already fixed by an earlier parallel call; the intra-op pool is what matters
            pass
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(cpus)
            tf.config.threading.set_inter_op_parallelism_threads(min(2, cpus))
        except RuntimeError:
            log.warning("TensorFlow's thread pools were already fixed; DFP_CPUS does not apply to them")
    log.info("math thread pools sized for %d CPU(s)", cpus)
    return cpus
