"""Batch work as Kubernetes Jobs, in a form Kubernetes 1.20 accepts (no Indexed Jobs): detection or
enhancement (super-resolution, face restoration) of many stored media, animation of many
(portrait, driving video) pairs, or a red-team run (`dfp redteam run` in one pod).

A batch of N shards is a ConfigMap holding each shard's item list (and the task) and N Jobs (one pod
each), all labelled ``dfp.io/batch={id}``. A pod runs ``dfp batch work`` over its shard: it asks the
gateway, with its team's token (from a Secret, never object store credentials), to process each
item, and prints one JSON line per item. Items are stored media names (for animation, a source and a
driving name separated by a space); each job at the gateway is
created with a request id made from the batch and the item, so a retried pod (or ``dfp batch
collect`` afterwards) gets the same operation instead of doing the work twice. Images are scored
synchronously.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
import time
from typing import Callable, Iterator

LABEL = "dfp.io/batch"
ITEMS_DIR = "/etc/dfp-batch"
TASK_KEY = "task.json"
DETECT, ENHANCE, ANIMATE, REDTEAM = "detect", "enhance", "animate", "redteam"
TASKS = (DETECT, ENHANCE, ANIMATE)  # the tasks over item lists; a red-team run has its own form
REDTEAM_CONFIG_KEY = "redteam.yaml"
SCRATCH_DIR = "/work"


class BatchError(ValueError):
    """A batch request that cannot be carried out; the message says why."""


@dataclasses.dataclass(frozen=True)
class BatchSpec:
    items: list[str]
    parallelism: int
    image: str
    gateway: str
    token_secret: str
    namespace: str = "default"
    gpus: int = 0
    node_selector: dict[str, str] = dataclasses.field(default_factory=dict)
    frames: int = 16
    backoff_limit: int = 3
    task: str = DETECT
    # Enhancement: the model and the output scale.
    model: str = "esrgan-x4"
    scale: int = 4
    # Animation: how driving keypoints move the source (relative or absolute).
    mode: str = "relative"
    # A Secret with the source bucket's credentials (keys endpoint, access_key, secret_key, secure),
    # for items that are s3:// objects outside the platform.
    source_secret: str = ""

    def work_arguments(self) -> list[str]:
        """What `dfp batch work` needs besides the batch and the items: the task and its options."""
        if self.task == ENHANCE:
            return ["--task", ENHANCE, "--model", self.model, "--scale", str(self.scale)]
        if self.task == ANIMATE:
            return ["--task", ANIMATE, "--mode", self.mode]
        return ["--task", DETECT, "--frames", str(self.frames)]


def new_batch_id() -> str:
    return secrets.token_hex(4)


def shards(items: list[str], count: int) -> list[list[str]]:
    """Round-robin shards, none empty."""
    count = max(1, min(count, len(items)))
    return [items[k::count] for k in range(count)]


def render(spec: BatchSpec, batch_id: str) -> list[dict]:
    """The ConfigMap and the Jobs of a batch, as manifests."""
    if not spec.items:
        raise BatchError("the batch has no items")
    if spec.task not in TASKS:
        raise BatchError(f"unknown task {spec.task!r}: use one of {', '.join(TASKS)}")
    names_per_item = 2 if spec.task == ANIMATE else 1
    prefixes = ("media/", "s3://") if spec.source_secret and spec.task != ANIMATE else ("media/",)
    bad = [item for item in spec.items
           if len(item.split()) != names_per_item or not all(name.startswith(prefixes) for name in item.split())]
    if bad:
        wanted = ("a source and a driving media name (media/... media/...)" if spec.task == ANIMATE
                  else "stored media names (media/...) or, with a source secret, s3:// objects")
        raise BatchError(f"items must be {wanted}, got {bad[:3]}")
    parts = shards(spec.items, spec.parallelism)
    config_map = _config_map(spec, batch_id, {f"shard-{k}": "\n".join(part) + "\n" for k, part in enumerate(parts)},
                             spec.task, spec.work_arguments())
    jobs = [_job(spec, batch_id, k, ["dfp", "batch", "work", "--batch", batch_id, "--items", f"{ITEMS_DIR}/shard-{k}",
                                     *spec.work_arguments()])
            for k in range(len(parts))]
    return [config_map, *jobs]


def _name(batch_id: str) -> str:
    return f"dfp-batch-{batch_id}"


def _labels(batch_id: str) -> dict[str, str]:
    return {LABEL: batch_id, "app.kubernetes.io/name": "dfp", "app.kubernetes.io/component": "batch"}


def _config_map(spec: BatchSpec, batch_id: str, data: dict[str, str], task: str, arguments: list[str]) -> dict:
    """The batch's ConfigMap: `data` (item lists or a configuration) and the task with its arguments."""
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": _name(batch_id), "namespace": spec.namespace, "labels": _labels(batch_id)},
            "data": {**data, TASK_KEY: json.dumps({"task": task, "arguments": arguments})}}


def _job(spec: BatchSpec, batch_id: str, shard: int, command: list[str], memory: str = "1Gi",
         scratch: str | None = None) -> dict:
    """One shard's Job: one pod running `command` with the batch's ConfigMap at ITEMS_DIR (and an
    empty scratch folder at `scratch` when given), the team token from its Secret."""
    name = _name(batch_id)
    labels = {**_labels(batch_id), "dfp.io/shard": str(shard)}
    resources = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": memory}}
    if spec.gpus:
        resources["limits"]["nvidia.com/gpu"] = str(spec.gpus)
    mounts = [{"name": "items", "mountPath": ITEMS_DIR, "readOnly": True}]
    volumes = [{"name": "items", "configMap": {"name": name}}]
    if scratch:
        mounts.append({"name": "scratch", "mountPath": scratch})
        volumes.append({"name": "scratch", "emptyDir": {}})
    container = {
        "name": "worker",
        "image": spec.image,
        "command": command,
        "env": [{"name": "DFP_GATEWAY", "value": spec.gateway},
                {"name": "DFP_TOKEN", "valueFrom": {"secretKeyRef": {"name": spec.token_secret, "key": "token"}}},
                *_source_env(spec.source_secret)],
        "resources": resources,
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "runAsUser": 10001,
                            "capabilities": {"drop": ["ALL"]}},
    }
    pod_spec = {"restartPolicy": "Never", "containers": [container], "automountServiceAccountToken": False,
                "volumes": volumes}
    if spec.node_selector:
        pod_spec["nodeSelector"] = dict(spec.node_selector)
    if spec.gpus:
        pod_spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": f"{name}-{shard}", "namespace": spec.namespace, "labels": labels},
        "spec": {"backoffLimit": spec.backoff_limit, "completions": 1, "parallelism": 1,
                 "template": {"metadata": {"labels": labels}, "spec": pod_spec}},
    }


def _source_env(secret: str) -> list[dict]:
    """The source bucket's settings from its Secret (`secure` may be left out: TLS then)."""
    if not secret:
        return []
    keys = {"DFP_SOURCE_S3_ENDPOINT": "endpoint", "DFP_SOURCE_S3_ACCESS_KEY": "access_key",
            "DFP_SOURCE_S3_SECRET_KEY": "secret_key", "DFP_SOURCE_S3_SECURE": "secure"}
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key,
                                                          **({"optional": True} if key == "secure" else {})}}}
            for name, key in keys.items()]


def render_redteam(spec: BatchSpec, batch_id: str, config_text: str) -> list[dict]:
    """A red-team run as a batch: the configuration in the ConfigMap, one Job whose pod runs
    `dfp redteam run` through the gateway. Every job it submits has a request id made from the run,
    so a retried pod, or `dfp batch collect` afterwards, gets the same operations."""
    from dfp.redteam import config as redteam_config

    try:
        run = redteam_config.parse(_yaml_load(config_text))
    except redteam_config.ConfigError as exc:
        raise BatchError(f"red-team configuration: {exc}") from None
    local = [p for p in (*run.sources, *run.real_clips) if not redteam_config.is_media_name(p)]
    if local:
        raise BatchError(f"a red-team run in a cluster reads stored media only: upload {local[0]} with `dfp upload` "
                         "and name it as media/... in the configuration")
    config_map = _config_map(spec, batch_id, {REDTEAM_CONFIG_KEY: config_text}, REDTEAM, [])
    command = ["dfp", "redteam", "run", "--config", f"{ITEMS_DIR}/{REDTEAM_CONFIG_KEY}", "--out", f"{SCRATCH_DIR}/run",
               "--quiet", "--json"]
    return [config_map, _job(spec, batch_id, 0, command, memory="4Gi", scratch=SCRATCH_DIR)]


def _yaml_load(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BatchError(f"not valid YAML: {exc}") from None


def submit(api_client, manifests: list[dict]) -> None:
    from kubernetes import client

    core, batch = client.CoreV1Api(api_client), client.BatchV1Api(api_client)
    for manifest in manifests:
        namespace = manifest["metadata"]["namespace"]
        if manifest["kind"] == "ConfigMap":
            core.create_namespaced_config_map(namespace, manifest)
        else:
            batch.create_namespaced_job(namespace, manifest)


def status(api_client, namespace: str, batch_id: str) -> dict:
    """Per shard: the Job's counts and its pods' phases and nodes; and the batch's state."""
    from kubernetes import client

    selector = f"{LABEL}={batch_id}"
    jobs = client.BatchV1Api(api_client).list_namespaced_job(namespace, label_selector=selector).items
    if not jobs:
        raise BatchError(f"no batch {batch_id} in namespace {namespace}")
    pods = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=selector).items
    shards_state = {}
    for job in jobs:
        shard = job.metadata.labels["dfp.io/shard"]
        shards_state[shard] = {
            "job": job.metadata.name, "active": job.status.active or 0, "succeeded": job.status.succeeded or 0,
            "failed": job.status.failed or 0,
            "pods": [{"name": pod.metadata.name, "phase": pod.status.phase, "node": pod.spec.node_name}
                     for pod in pods if pod.metadata.labels.get("dfp.io/shard") == shard],
        }
    done = sum(1 for s in shards_state.values() if s["succeeded"])
    failed = sum(1 for job in jobs if any(c.type == "Failed" and c.status == "True"
                                          for c in (job.status.conditions or [])))
    state = "Complete" if done == len(jobs) else "Failed" if failed else "Running"
    return {"batch": batch_id, "state": state, "shards": len(jobs), "shards_done": done, "shards_failed": failed,
            "detail": shards_state}


def cancel(api_client, namespace: str, batch_id: str) -> int:
    """Deletes the batch's Jobs (their pods with them) and ConfigMap; returns the Jobs deleted."""
    from kubernetes import client

    selector = f"{LABEL}={batch_id}"
    batch_api = client.BatchV1Api(api_client)
    jobs = batch_api.list_namespaced_job(namespace, label_selector=selector).items
    for job in jobs:
        batch_api.delete_namespaced_job(job.metadata.name, namespace, propagation_policy="Background")
    client.CoreV1Api(api_client).delete_collection_namespaced_config_map(namespace, label_selector=selector)
    return len(jobs)


def batch_data(api_client, namespace: str, batch_id: str) -> dict[str, str]:
    """What the batch's ConfigMap holds (item lists or a red-team configuration, and the task)."""
    from kubernetes import client

    return client.CoreV1Api(api_client).read_namespaced_config_map(_name(batch_id), namespace).data


def items_of(data: dict[str, str]) -> list[str]:
    return [line for key, text in data.items() if key.startswith("shard-") for line in text.splitlines() if line]


def task_of(data: dict[str, str]) -> dict:
    """The batch's task and its `dfp batch work` arguments (batches from before tasks: detection)."""
    return json.loads(data.get(TASK_KEY, json.dumps({"task": DETECT, "arguments": []})))


def request_id(batch_id: str, item: str) -> str:
    return f"batch-{batch_id}-{hashlib.sha256(item.encode()).hexdigest()[:24]}"


def _identity(item: str) -> str:
    return item


def detect_items(client, batch_id: str, items: list[str], frames: int,
                 media_name: Callable[[str], str] = _identity) -> Iterator[dict]:
    """Each item's detection through the gateway, as one summary row (item, fake probabilities...).
    `media_name` maps an item to its stored media (s3:// items are imported first)."""
    from dfp.batch_sources import SourceError
    from dfp.client import ApiError, OperationFailed, operation_result
    from dfp.v1 import detection_pb2, media_pb2

    for item in items:
        row = {"item": item, "media": "", "media_type": "", "label": "", "max_fake_probability": None,
               "mean_fake_probability": None, "faces_scored": 0, "error": ""}
        try:
            name = row["media"] = media_name(item)
            media = client.get_media(name)
            if media.media_type == media_pb2.IMAGE:
                row["media_type"] = "image"
                verdict = client.detect_image(media=name).verdict
            else:
                row["media_type"] = "video"
                operation = client.detect_video(name, sampling=detection_pb2.FrameSampling(frame_count=frames),
                                                request_id=request_id(batch_id, item))
                result = operation_result(client.wait_operation(operation.name, timeout_s=3600),
                                          detection_pb2.DetectVideoResponse)
                verdict = result.verdict
                row["operation"] = operation.name
            row.update(label=detection_pb2.Label.Name(verdict.label), max_fake_probability=verdict.max_fake_probability,
                       mean_fake_probability=verdict.mean_fake_probability, faces_scored=verdict.faces_scored)
        except (ApiError, OperationFailed) as exc:
            row["error"] = f"{exc.code.name}: {exc.message}"
        except SourceError as exc:
            row["error"] = f"UNAVAILABLE: {exc}"
        yield row


def enhance_items(client, batch_id: str, items: list[str], model: str, scale: int,
                  media_name: Callable[[str], str] = _identity) -> Iterator[dict]:
    """Each item's enhancement through the gateway, as one row (item, result media, size...)."""
    from dfp.batch_sources import SourceError
    from dfp.client import ApiError, OperationFailed, operation_result
    from dfp.v1 import enhancement_pb2

    for item in items:
        row = {"item": item, "model": model, "scale": scale, "result_media": "", "width": 0, "height": 0, "frames": 0,
               "operation": "", "error": ""}
        try:
            operation = client.enhance(media_name(item), model=model, scale=scale, request_id=request_id(batch_id, item))
            row["operation"] = operation.name
            result = operation_result(client.wait_operation(operation.name, timeout_s=3600),
                                      enhancement_pb2.EnhanceResponse)
            row.update(result_media=result.result_media, width=result.width, height=result.height, frames=result.frames)
        except (ApiError, OperationFailed) as exc:
            row["error"] = f"{exc.code.name}: {exc.message}"
        except SourceError as exc:
            row["error"] = f"UNAVAILABLE: {exc}"
        yield row


def animate_items(client, batch_id: str, items: list[str], mode: str) -> Iterator[dict]:
    """Each (source, driving) pair's animation through the gateway, as one row (item, result media...)."""
    from dfp.client import ApiError, OperationFailed, operation_result
    from dfp.v1 import creation_pb2

    for item in items:
        source, driving = item.split()
        row = {"item": item, "source": source, "driving": driving, "mode": mode, "result_media": "", "frames": 0,
               "operation": "", "error": ""}
        try:
            operation = client.animate_image(source, driving, mode=mode, request_id=request_id(batch_id, item))
            row["operation"] = operation.name
            result = operation_result(client.wait_operation(operation.name, timeout_s=3600),
                                      creation_pb2.AnimateImageResponse)
            row.update(result_media=result.result_media, frames=result.frames)
        except (ApiError, OperationFailed) as exc:
            row["error"] = f"{exc.code.name}: {exc.message}"
        yield row


def wait_for(api_client, namespace: str, batch_id: str, timeout_s: float, poll_s: float = 2.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        current = status(api_client, namespace, batch_id)
        if current["state"] != "Running" or time.monotonic() > deadline:
            return current
        time.sleep(poll_s)


def report_json(rows: list[dict]) -> str:
    return "\n".join(json.dumps(row, sort_keys=True) for row in rows) + "\n"
