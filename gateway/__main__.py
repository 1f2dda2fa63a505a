"""Runs the gateway: `python -m gateway`. Settings come from DFP_* environment variables (README)."""

import logging

from dfp.config import GatewaySettings
from dfp.grpc_util import wait_for_signal
from gateway.server import Gateway


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    gateway = Gateway(GatewaySettings.from_env())
    gateway.start()
    logging.getLogger("gateway").info("gateway listening on port %d", gateway.port)
    wait_for_signal()
    gateway.stop()


if __name__ == "__main__":
    main()
