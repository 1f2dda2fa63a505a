"""Serves the creator models under TorchServe: `python -m services.creator.serving`.

Builds the animation model's archive from a config and a checkpoint (default: the platform's own
model; with --registry-model, the version the model registry serves), starts TorchServe with gRPC
inference on --grpc-port, and, unless --no-swap-sync, keeps the published version of every face swap
model in the registry served (see registry_sync). Stops on SIGTERM. This is the creator's container
entrypoint in the Helm chart."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import tempfile
import threading

from dfp.observability import configure_logging
from services.creator import default_model
from services.creator.serving.torchserve_process import TorchServe, build_fomm_archive


def _registry():
    from dfp.config import StorageSettings
    from dfp.registry import ModelRegistry
    from dfp.storage import ObjectStore

    return ModelRegistry(ObjectStore(StorageSettings.from_env()))


def _from_registry(name: str, dest: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    registry = _registry()
    model = registry.model(name)
    if model["kind"] != "animation" or model["serving_version"] is None:
        raise SystemExit(f"registry model {name} is not an animation model with a serving version")
    folder = registry.download(name, model["serving_version"], dest)
    logging.info("serving registry model %s version %s", name, model["serving_version"])
    return folder / "config.yaml", folder / "checkpoint.pth.tar"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("DFP_ANIMATION_CONFIG", default_model.CONFIG)))
    parser.add_argument("--checkpoint", type=pathlib.Path,
                        default=pathlib.Path(os.environ.get("DFP_ANIMATION_CHECKPOINT", default_model.CHECKPOINT)))
    parser.add_argument("--registry-model", default=os.environ.get("DFP_ANIMATION_REGISTRY_MODEL", ""),
                        help="Serve this registry model's serving version (DFP_S3_* settings) instead of --config/--checkpoint.")
    parser.add_argument("--model-name", default=os.environ.get("DFP_DEFAULT_ANIMATION_MODEL", "fomm"))
    parser.add_argument("--bind", default=os.environ.get("DFP_CREATOR_BIND", "127.0.0.1"),
                        help="Address for gRPC inference and the HTTP /ping probe (0.0.0.0 in a pod).")
    parser.add_argument("--grpc-port", type=int, default=int(os.environ.get("DFP_CREATOR_GRPC_PORT", "7070")))
    parser.add_argument("--http-port", type=int, default=int(os.environ.get("DFP_CREATOR_HTTP_PORT", "8080")))
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("DFP_CREATOR_METRICS_PORT", "8082")),
                        help="TorchServe's Prometheus metrics (0: any free port).")
    parser.add_argument("--workers", type=int, default=int(os.environ.get("DFP_CREATOR_WORKERS", "1")))
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    parser.add_argument("--no-swap-sync", action="store_true",
                        default=os.environ.get("DFP_SWAP_REGISTRY_SYNC", "1") == "0",
                        help="Do not serve the registry's face swap models (DFP_SWAP_REGISTRY_SYNC=0).")
    parser.add_argument("--poll-s", type=float, default=float(os.environ.get("DFP_CREATOR_POLL_S", "30")),
                        help="How often the registry is read for newly published face swap versions.")
    parser.add_argument("--ready-file", type=pathlib.Path, default=None,
                        help="Written once TorchServe serves the animation model.")
    args = parser.parse_args(argv)
    configure_logging()

    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="dfp-creator-"))
    config, checkpoint = args.config, args.checkpoint
    if args.registry_model:
        config, checkpoint = _from_registry(args.registry_model, workdir / "registry")
    store = workdir / "model-store"
    build_fomm_archive(config, checkpoint, store, name=args.model_name)
    server = TorchServe(workdir, store, [f"{args.model_name}={args.model_name}.mar"], workers=args.workers,
                        bind=args.bind, inference_port=args.grpc_port, http_port=args.http_port,
                        metrics_port=args.metrics_port, log_to_file=False)
    stop = threading.Event()
    # The handler only flags: stopping TorchServe waits on its process, which the main thread may be doing.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server.start()
    logging.info("serving %s on %s:%d (gRPC)", args.model_name, args.bind, args.grpc_port)
    if not args.no_swap_sync:
        from services.creator.serving.registry_sync import SwapModelSync

        sync = SwapModelSync(_registry(), server, workdir / "swap-models")
        threading.Thread(target=sync.run, args=(stop, args.poll_s), name="registry-sync", daemon=True).start()
    if args.ready_file:
        args.ready_file.write_text("ready\n")
    while not stop.wait(1.0) and server.running():
        pass
    server.stop()
    if not stop.is_set():
        logging.error("TorchServe exited on its own; stopping")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
