"""Serves the animation model under TorchServe: `python -m services.creator.serving`.

Builds the model archive from a config and a checkpoint (default: the platform's own model; with
--registry-model, the version the model registry serves), starts TorchServe in the foreground with
gRPC inference on --grpc-port, and stops it on SIGTERM. This is the creator's container entrypoint
in the Helm chart."""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import signal
import tempfile

from services.creator import default_model
from services.creator.serving.torchserve_process import TorchServe, build_archive


def _from_registry(name: str, dest: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    from dfp.config import StorageSettings
    from dfp.registry import ModelRegistry
    from dfp.storage import ObjectStore

    registry = ModelRegistry(ObjectStore(StorageSettings.from_env()))
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
    parser.add_argument("--workers", type=int, default=int(os.environ.get("DFP_CREATOR_WORKERS", "1")))
    parser.add_argument("--workdir", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    workdir = args.workdir or pathlib.Path(tempfile.mkdtemp(prefix="dfp-creator-"))
    config, checkpoint = args.config, args.checkpoint
    if args.registry_model:
        config, checkpoint = _from_registry(args.registry_model, workdir / "registry")
    store = workdir / "model-store"
    build_archive(config, checkpoint, store, name=args.model_name)
    server = TorchServe(workdir, store, [f"{args.model_name}={args.model_name}.mar"], workers=args.workers,
                        bind=args.bind, inference_port=args.grpc_port, http_port=args.http_port, log_to_file=False)
    signal.signal(signal.SIGTERM, lambda *_: server.stop())
    server.start()
    logging.info("serving %s on %s:%d (gRPC)", args.model_name, args.bind, args.grpc_port)
    return server.wait()


if __name__ == "__main__":
    raise SystemExit(main())
