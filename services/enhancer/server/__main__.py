"""Runs the enhancer service: `python -m services.enhancer.server`.

Settings come from DFP_ENHANCER_* (see dfp.config.EnhancerSettings) and DFP_S3_*; the super-resolution
weights from DFP_ENHANCER_MODEL_DIR (`dfp enhancer build-weights`); the "face" model uses the published
DFDNet when DFP_DFDNET_CHECKPOINT and DFP_DFDNET_DICTIONARY (and optionally DFP_VGG19) name its files. `--preload` loads models before
the service reports SERVING, so the first request does not pay for it. With DFP_MTLS_* the port admits
only clients with a certificate from the platform's CA; DFP_HEALTH_LISTEN then serves plaintext
health checks for probes.
"""

from __future__ import annotations

import argparse
import logging

from dfp.config import EnhancerSettings
from dfp.cpus import configure_math_threads
from dfp.enhancer.v1 import enhancer_pb2_grpc
from dfp.grpc_util import MutualTls, Server, wait_for_signal
from dfp.observability import CallMetricsInterceptor, configure_logging, start_metrics_server
from dfp.storage import ObjectStore
from services.enhancer.server.servicer import MODELS, EnhancerServicer, ModelCache


def main(argv: list[str] | None = None) -> None:
    settings = EnhancerSettings.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default=settings.listen, help="host:port (DFP_ENHANCER_LISTEN)")
    parser.add_argument("--preload", action="append", default=[], choices=MODELS, help="model to load at start; repeatable")
    args = parser.parse_args(argv)
    configure_logging()
    configure_math_threads()

    models = ModelCache.from_settings(settings)
    for name in args.preload:
        models.get(name)
    server = Server(
        args.listen,
        [(enhancer_pb2_grpc.add_EnhancerServiceServicer_to_server, EnhancerServicer(settings, ObjectStore(settings.storage), models),
          "dfp.enhancer.v1.EnhancerService")],
        interceptors=(CallMetricsInterceptor("enhancer"),),
        mtls=MutualTls.from_env(),
        health_address=settings.health_listen,
    )
    server.start()
    metrics_port = start_metrics_server(settings.metrics_listen)
    logging.getLogger(__name__).info("enhancer serving on port %d; metrics on port %d", server.port, metrics_port)
    wait_for_signal()
    server.stop()


if __name__ == "__main__":
    main()
