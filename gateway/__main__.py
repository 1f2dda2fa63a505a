"""Runs the gateway: `python -m gateway`. Settings come from DFP_* environment variables (README)."""

import logging

from dfp.config import GatewaySettings
from dfp.cpus import configure_math_threads
from dfp.grpc_util import wait_for_signal
from dfp.observability import configure_logging, start_metrics_server
from gateway.server import Gateway


def main() -> None:
    configure_logging()
    configure_math_threads()
    settings = GatewaySettings.from_env()
    gateway = Gateway(settings)
    gateway.start()
    metrics_port = start_metrics_server(settings.metrics_listen)
    logging.getLogger("gateway").info("gateway listening on port %d; metrics on port %d", gateway.port, metrics_port)
    wait_for_signal()
    gateway.stop()


if __name__ == "__main__":
    main()
