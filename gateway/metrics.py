"""The gateway's own Prometheus metrics (calls are counted and timed by
dfp.observability.CallMetricsInterceptor)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

JOBS_PENDING = Gauge("dfp_gateway_jobs_pending", "Jobs queued or running, across teams, as the runner last saw")
JOBS_FINISHED = Counter("dfp_gateway_jobs_finished", "Jobs ended, by kind and final state", ["kind", "state"])
