"""Runs the TensorFlow Serving API model server: `python -m services.detector.model_server`.

Flags follow tensorflow_model_server's names where they exist. Each `--model NAME` is served from
`<model_base_path>/NAME`; without any, every model directory under the base path is served. With
DFP_MTLS_* the port admits only clients with a certificate from the platform's CA (as TF Serving's
ssl_config with client_verify does); DFP_HEALTH_LISTEN then serves plaintext health checks.
"""

from __future__ import annotations

import argparse
import logging
import pathlib

from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

from dfp.config import ModelServerSettings
from dfp.cpus import configure_math_threads
from dfp.grpc_util import MutualTls, Server, wait_for_signal
from dfp.observability import CallMetricsInterceptor, configure_logging, start_metrics_server
from services.detector.model_server.servables import BatchingParameters, ServableManager
from services.detector.model_server.servicer import ModelServicer, PredictionServicer


def build_server(
    listen: str,
    models: dict[str, pathlib.Path],
    batching: BatchingParameters | None,
    poll_wait_s: float,
    interceptors: tuple = (),
    mtls: MutualTls | None = None,
    health_address: str = "",
) -> tuple[Server, ServableManager]:
    manager = ServableManager(models, batching, poll_wait_s)
    server = Server(
        listen,
        [
            (
                prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server,
                PredictionServicer(manager),
                "tensorflow.serving.PredictionService",
            ),
            (
                model_service_pb2_grpc.add_ModelServiceServicer_to_server,
                ModelServicer(manager),
                "tensorflow.serving.ModelService",
            ),
        ],
        max_workers=64,
        interceptors=interceptors,
        mtls=mtls,
        health_address=health_address,
    )
    return server, manager


def _export_gpu_memory() -> None:
    """A gauge of the GPU memory TensorFlow holds, per GPU, when there are GPUs."""
    import tensorflow as tf
    from prometheus_client import Gauge

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return
    gauge = Gauge("dfp_model_server_gpu_memory_bytes", "GPU memory TensorFlow holds", ["device"])
    for index in range(len(gpus)):
        device = f"GPU:{index}"
        gauge.labels(device).set_function(lambda device=device: tf.config.experimental.get_memory_info(device)["current"])


def main(argv: list[str] | None = None) -> None:
    settings = ModelServerSettings.from_env()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default=settings.listen, help="host:port (DFP_MODEL_SERVER_LISTEN)")
    parser.add_argument("--model_base_path", type=pathlib.Path, default=settings.model_base_path)
    parser.add_argument("--model", action="append", default=[], help="model name to serve; repeatable")
    parser.add_argument("--file_system_poll_wait_seconds", type=float, default=settings.poll_wait_s)
    parser.add_argument("--enable_batching", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--max_batch_size", type=int, default=settings.max_batch_size)
    parser.add_argument("--batch_timeout_micros", type=int, default=settings.batch_timeout_micros)
    parser.add_argument("--num_batch_threads", type=int, default=settings.num_batch_threads)
    parser.add_argument("--metrics_listen", default=settings.metrics_listen,
                        help="host:port for Prometheus /metrics (DFP_METRICS_LISTEN; empty: off)")
    args = parser.parse_args(argv)
    configure_logging()
    configure_math_threads()

    names = args.model
    if not names and args.model_base_path.is_dir():
        names = sorted(p.name for p in args.model_base_path.iterdir() if p.is_dir())
    models = {name: args.model_base_path / name for name in names}
    batching = None
    if args.enable_batching:
        batching = BatchingParameters(args.max_batch_size, args.batch_timeout_micros, args.num_batch_threads)
    server, manager = build_server(args.listen, models, batching, args.file_system_poll_wait_seconds,
                                   interceptors=(CallMetricsInterceptor("model_server"),), mtls=MutualTls.from_env(),
                                   health_address=settings.health_listen)
    manager.start()
    server.start()
    metrics_port = start_metrics_server(args.metrics_listen)
    if metrics_port:
        _export_gpu_memory()
    logging.getLogger(__name__).info("serving %s on port %d; metrics on port %d", sorted(models), server.port,
                                     metrics_port)
    wait_for_signal()
    server.stop()
    manager.stop()


if __name__ == "__main__":
    main()
