"""`dfp batch ...`: batch detection and enhancement as Kubernetes Jobs (see dfp.batch), followed with
kubectl or here."""

from __future__ import annotations

import csv
import io
import json
import pathlib

import click

from dfp.cli.output import emit


def _api(kubeconfig: str | None):
    import os

    from kubernetes import config

    # The client reads $KUBECONFIG when it is imported; read it at call time instead.
    return config.new_client_from_config(kubeconfig or os.environ.get("KUBECONFIG") or None)


kube_options = [
    click.option("--kubeconfig", default=None, help="Kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."),
    click.option("--namespace", "-n", default="default", show_default=True),
]


def with_kube(command):
    for option in reversed(kube_options):
        command = option(command)
    return command


@click.group()
def batch() -> None:
    """Run detection, enhancement or animation over many stored media as Kubernetes Jobs (Kubernetes
    1.20 and later)."""


submit_options = [
    click.argument("source", required=False),
    click.option("--items", "items_file", type=click.File("r"), default=None,
                 help="File of media names (media/...), one per line."),
    click.option("--label", default=None, help="Every stored media of your team with this label (KEY=VALUE)."),
    click.option("--parallelism", type=click.IntRange(1, 1000), default=4, show_default=True,
                 help="Shards, each one Job with one pod."),
    click.option("--image", required=True, help="The tools image the pods run (docker/tools.Dockerfile: the dfp CLI)."),
    click.option("--gateway", "gateway_address", required=True, help="Gateway host:port as the pods reach it."),
    click.option("--token-secret", required=True, help="Secret with key `token`: the team's API token."),
    click.option("--gpus", type=click.IntRange(0, 8), default=0, show_default=True, help="nvidia.com/gpu per pod."),
    click.option("--node-selector", multiple=True, help="KEY=VALUE a node must have; repeatable."),
    click.option("--print", "print_only", is_flag=True, help="Print the manifests for `kubectl apply -f -` instead."),
    click.option("--source-secret", default="",
                 help="For an s3:// SOURCE: Secret with the bucket's endpoint, access_key, secret_key (and secure)."),
]


def with_submit_options(command):
    for option in reversed(submit_options):
        command = option(command)
    return command


def _submit(task_options: dict, source, items_file, label, parallelism, image, gateway_address, token_secret, gpus,
            node_selector, print_only, source_secret, kubeconfig, namespace, as_json) -> None:
    import yaml

    from dfp import batch as batch_lib

    if sum(map(bool, (source, items_file, label))) != 1:
        raise click.UsageError("give exactly one of SOURCE (s3://bucket/prefix), --items or --label")
    if (label or source) and task_options["task"] == "animate":
        raise click.UsageError("animation takes pairs: give --items with one `SOURCE DRIVING` pair of media names a line")
    if source and not source_secret:
        raise click.UsageError("an s3:// SOURCE needs --source-secret: the pods read the bucket with its credentials")
    if source:
        from dfp import batch_sources

        try:
            items = batch_sources.list_items(batch_sources.SourceSettings.from_env(), source)
        except batch_sources.SourceError as exc:
            raise click.UsageError(str(exc)) from None
        if not items:
            raise click.UsageError(f"no objects under {source}")
    elif items_file:
        items = [line.strip() for line in items_file if line.strip()]
    else:
        from dfp.client import Client

        key, _, value = label.partition("=")
        with Client() as client:
            items = [m.name for m in client.list_media() if m.labels.get(key) == value]
    selector = dict(pair.split("=", 1) for pair in node_selector)
    spec = batch_lib.BatchSpec(items=items, parallelism=parallelism, image=image, gateway=gateway_address,
                               token_secret=token_secret, namespace=namespace, gpus=gpus, node_selector=selector,
                               source_secret=source_secret, **task_options)
    batch_id = batch_lib.new_batch_id()
    manifests = batch_lib.render(spec, batch_id)
    if print_only:
        click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
        return
    batch_lib.submit(_api(kubeconfig), manifests)
    emit({"batch": batch_id, "items": len(items), "shards": len(manifests) - 1}, as_json,
         f"batch {batch_id}: {len(items)} items in {len(manifests) - 1} Jobs (label dfp.io/batch={batch_id})")


@batch.command("detect")
@with_submit_options
@click.option("--frames", type=click.IntRange(1, 10000), default=16, show_default=True, help="Frames per video.")
@with_kube
@click.option("--json", "as_json", is_flag=True)
def detect_command(frames, **options):
    """Submit a batch detection; prints the batch id.

    SOURCE is an s3://bucket/prefix outside the platform: its objects are listed now (with the
    DFP_SOURCE_S3_* settings) and each pod imports its share through the gateway (idempotently: a
    retried pod finds what it imported before), reading the bucket with --source-secret.

    \b
    Examples:
      dfp batch detect s3://campaign/2026-11/ --source-secret campaign-s3 --parallelism 8 \\
          --image registry.example/dfp-tools:0.1.0 --gateway dfp-gateway.dfp:50051 --token-secret dfp-team-token -n dfp
      dfp batch detect --label campaign=dfdc --parallelism 8 --image registry.example/dfp-tools:0.1.0 \\
          --gateway dfp-gateway.dfp:50051 --token-secret dfp-team-token -n dfp
      dfp batch detect --items names.txt ... --print | kubectl apply -f -
    """
    _submit({"task": "detect", "frames": frames}, **options)


@batch.command("enhance")
@with_submit_options
@click.option("--model", type=click.Choice(["esrgan-x4", "srvgg-x4", "face"]), default="esrgan-x4", show_default=True)
@click.option("--scale", type=click.IntRange(2, 4), default=4, show_default=True)
@with_kube
@click.option("--json", "as_json", is_flag=True)
def enhance_command(model, scale, **options):
    """Submit a batch enhancement (each item becomes a new stored media item); prints the batch id.

    The pods only drive the gateway's jobs: the enhancer service does the work on its GPUs, so the
    pods need no GPU. SOURCE may be an s3://bucket/prefix, as for `dfp batch detect`.

    \b
    Example:
      dfp batch enhance --label campaign=fakes --model face --scale 2 --image registry.example/dfp-tools:0.1.0 \\
          --gateway dfp-gateway.dfp:50051 --token-secret dfp-team-token -n dfp
    """
    _submit({"task": "enhance", "model": model, "scale": scale}, **options)


@batch.command("animate")
@with_submit_options
@click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative", show_default=True)
@with_kube
@click.option("--json", "as_json", is_flag=True)
def animate_command(mode, **options):
    """Submit a batch animation: --items lists `SOURCE DRIVING` media name pairs, one a line (a
    portrait image and a driving video); each pair becomes a new stored video. Prints the batch id.

    \b
    Example:
      dfp batch animate --items pairs.txt --image registry.example/dfp-tools:0.1.0 \\
          --gateway dfp-gateway.dfp:50051 --token-secret dfp-team-token -n dfp
    """
    _submit({"task": "animate", "mode": mode}, **options)


@batch.command("redteam")
@click.option("--config", "config_file", type=click.File("r"), required=True,
              help="A red-team configuration whose inputs are stored media names (media/...).")
@click.option("--image", required=True, help="The tools image the pod runs (docker/tools.Dockerfile: the dfp CLI).")
@click.option("--gateway", "gateway_address", required=True, help="Gateway host:port as the pod reaches it.")
@click.option("--token-secret", required=True, help="Secret with key `token`: the team's API token.")
@click.option("--node-selector", multiple=True, help="KEY=VALUE a node must have; repeatable.")
@click.option("--print", "print_only", is_flag=True, help="Print the manifests for `kubectl apply -f -` instead.")
@with_kube
@click.option("--json", "as_json", is_flag=True)
def redteam_command(config_file, image, gateway_address, token_secret, node_selector, print_only, kubeconfig,
                    namespace, as_json):
    """Submit a red-team run (`dfp redteam run`) as a Job; prints the batch id.

    The pod drives the gateway's jobs (creation, enhancement, detection run on the services' GPUs),
    so it needs no GPU. Its log ends with the report as JSON; `dfp batch collect BATCH --out DIR`
    writes the whole report (Markdown, JSON, figures) here, fetching the same operations again.

    \b
    Example:
      dfp batch redteam --config redteam-cluster.yaml --image registry.example/dfp-tools:0.1.0 \\
          --gateway dfp-gateway.dfp:50051 --token-secret dfp-team-token -n dfp
    """
    import yaml

    from dfp import batch as batch_lib

    spec = batch_lib.BatchSpec(items=[], parallelism=1, image=image, gateway=gateway_address, token_secret=token_secret,
                               namespace=namespace, node_selector=dict(p.split("=", 1) for p in node_selector),
                               task=batch_lib.REDTEAM)
    batch_id = batch_lib.new_batch_id()
    try:
        manifests = batch_lib.render_redteam(spec, batch_id, config_file.read())
    except batch_lib.BatchError as exc:
        raise click.UsageError(str(exc)) from None
    if print_only:
        click.echo(yaml.safe_dump_all(manifests, sort_keys=False), nl=False)
        return
    batch_lib.submit(_api(kubeconfig), manifests)
    emit({"batch": batch_id, "task": "redteam"}, as_json, f"batch {batch_id}: red-team run in 1 Job "
                                                            f"(label dfp.io/batch={batch_id})")


@batch.command("status")
@click.argument("batch_id")
@click.option("--wait", "wait_s", type=float, default=0, help="Wait up to this many seconds for it to end.")
@with_kube
@click.option("--json", "as_json", is_flag=True)
def status_command(batch_id, wait_s, kubeconfig, namespace, as_json):
    """A batch's state, and per shard its Job's counts and pods."""
    from dfp import batch as batch_lib

    api = _api(kubeconfig)
    current = (batch_lib.wait_for(api, namespace, batch_id, wait_s) if wait_s
               else batch_lib.status(api, namespace, batch_id))
    emit(current, as_json, f"batch {batch_id}: {current['state']}, {current['shards_done']}/{current['shards']} "
                           f"shards done, {current['shards_failed']} failed")


@batch.command("logs")
@click.argument("batch_id")
@with_kube
def logs_command(batch_id, kubeconfig, namespace):
    """The pods' output: one JSON line per item they finished."""
    from kubernetes import client

    from dfp.batch import LABEL

    core = client.CoreV1Api(_api(kubeconfig))
    for pod in core.list_namespaced_pod(namespace, label_selector=f"{LABEL}={batch_id}").items:
        click.echo(f"# {pod.metadata.name} ({pod.status.phase})")
        click.echo(core.read_namespaced_pod_log(pod.metadata.name, namespace), nl=False)


@batch.command("cancel")
@click.argument("batch_id")
@with_kube
def cancel_command(batch_id, kubeconfig, namespace):
    """Delete the batch's Jobs, pods and item list. Detections already queued at the gateway finish."""
    from dfp import batch as batch_lib

    deleted = batch_lib.cancel(_api(kubeconfig), namespace, batch_id)
    click.echo(f"batch {batch_id}: deleted {deleted} Jobs")


@batch.command("collect")
@click.argument("batch_id")
@click.option("--out", type=click.Path(path_type=pathlib.Path), required=True,
              help="Report file: .csv or .json (JSON lines); for a red-team run, the run folder.")
@with_kube
def collect_command(batch_id, out, kubeconfig, namespace):
    """Gather every item's result from the gateway into a report (a stored job's result is fetched
    again by its request id, never recomputed)."""
    from dfp import batch as batch_lib

    data = batch_lib.batch_data(_api(kubeconfig), namespace, batch_id)
    task = batch_lib.task_of(data)
    if task["task"] == batch_lib.REDTEAM:
        _collect_redteam(data[batch_lib.REDTEAM_CONFIG_KEY], out)
        return
    rows = list(_rows(batch_id, batch_lib.items_of(data), task["arguments"]))
    _write_report(rows, out)
    errors = sum(1 for row in rows if row["error"])
    click.echo(f"{out}: {len(rows)} items, {errors} with errors")


def _collect_redteam(config_text: str, out: pathlib.Path) -> None:
    """The red-team run again from here: the same request ids find the pod's operations, so nothing
    is redone; the media are downloaded and the report written into `out`."""
    from dfp.client import Client
    from dfp.redteam import config as redteam_config
    from dfp.redteam import report
    from dfp.redteam.runner import Runner

    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_text)
    run = redteam_config.load(out / "config.yaml")
    with Client() as client:
        state = Runner(client, run, out).execute()
    report.write_run(run, out, state)
    click.echo(f"{out / 'report.md'}: red-team report of {len(state['steps'])} steps")


work_options = [
    click.option("--task", type=click.Choice(["detect", "enhance", "animate"]), default="detect"),
    click.option("--frames", type=click.IntRange(1, 10000), default=16),
    click.option("--model", default="esrgan-x4"),
    click.option("--scale", type=click.IntRange(2, 4), default=4),
    click.option("--mode", type=click.Choice(["relative", "absolute"]), default="relative"),
]


def _work_parser() -> click.Command:
    """A command that parses `dfp batch work`'s task arguments, for reading them back from a batch."""

    @click.command()
    def parse(**values):
        return values

    for option in reversed(work_options):
        parse = option(parse)
    return parse


def _rows(batch_id: str, items: list[str], arguments: list[str]):
    from dfp import batch as batch_lib
    from dfp.client import Client

    task = _work_parser().main(arguments, standalone_mode=False)
    with Client() as client:
        media_name = _importer(client, batch_id, items)
        if task["task"] == "enhance":
            yield from batch_lib.enhance_items(client, batch_id, items, task["model"], task["scale"], media_name)
        elif task["task"] == "animate":
            yield from batch_lib.animate_items(client, batch_id, items, task["mode"])
        else:
            yield from batch_lib.detect_items(client, batch_id, items, task["frames"], media_name)


def _importer(client, batch_id: str, items: list[str]):
    """How items become media names: s3:// objects are imported through the gateway first."""
    if not any(item.startswith("s3://") for item in items):
        return lambda item: item
    from dfp import batch_sources

    return batch_sources.Importer(client, batch_sources.SourceSettings.from_env(), batch_id).media_name


@batch.command("work", hidden=True, context_settings={"ignore_unknown_options": True})
@click.option("--batch", "batch_id", required=True)
@click.option("--items", "items_file", type=click.File("r"), required=True)
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def work_command(batch_id, items_file, arguments):
    """A batch pod's work: each item of its shard through the gateway (DFP_GATEWAY, DFP_TOKEN); the
    task arguments (--task, --frames, --model, --scale, --mode) follow."""
    items = [line.strip() for line in items_file if line.strip()]
    transient = 0
    for row in _rows(batch_id, items, list(arguments)):
        click.echo(json.dumps(row, sort_keys=True))
        # A missing or unreadable item will not get better on a retry; anything else may.
        if row["error"] and not row["error"].startswith(("NOT_FOUND", "INVALID_ARGUMENT")):
            transient += 1
    if transient:
        raise SystemExit(1)  # the Job retries the pod; items already done are fetched, not redone


def _write_report(rows: list[dict], out: pathlib.Path) -> None:
    from dfp.batch import report_json

    if out.suffix == ".csv":
        buffer = io.StringIO()
        fieldnames = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(rows)
        out.write_text(buffer.getvalue())
    else:
        out.write_text(report_json(rows))


def register(cli: click.Group) -> None:
    cli.add_command(batch)
