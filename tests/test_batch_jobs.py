"""Batch detection as Kubernetes Jobs against a real control plane (etcd, kube-apiserver 1.20, the Job
controller, the scheduler; no kubelet, so the test plays the pods: it runs their command itself and
sets their status), with the real gateway stack doing the detection."""

import json
import pathlib
import time

import kubernetes_validate
import pytest
from click.testing import CliRunner

from dfp import batch as batch_lib
from dfp.cli.main import cli
from dfp.local_kube import LocalKube

pytestmark = pytest.mark.slow
NAMESPACE = "default"


@pytest.fixture(scope="module")
def kube(tmp_path_factory):
    with LocalKube(tmp_path_factory.mktemp("kube"), users={"batch-user": "research"}) as running:
        yield running


@pytest.fixture(scope="module")
def api(kube):
    from kubernetes import client

    api_client = kube.api_client()
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + 60
    while True:  # the default service account and namespace appear once the control plane settles
        try:
            core.read_namespace(NAMESPACE)
            break
        except client.exceptions.ApiException:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    for name, gpus in (("cpu-node", 0), ("gpu-node", 2)):
        capacity = {"cpu": "8", "memory": "32Gi", "pods": "20", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
        core.create_node({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
        core.patch_node_status(name, {"status": {
            "capacity": capacity, "allocatable": capacity,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "test node",
                            "lastHeartbeatTime": None, "lastTransitionTime": None}]}})
    return api_client


def dfp(*args, env=None):
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def pods_of(api, batch_id):
    from kubernetes import client

    return client.CoreV1Api(api).list_namespaced_pod(NAMESPACE, label_selector=f"{batch_lib.LABEL}={batch_id}").items


def wait_pods(api, batch_id, count, scheduled=True, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while True:
        pods = pods_of(api, batch_id)
        if len(pods) >= count and (not scheduled or all(p.spec.node_name for p in pods)):
            return pods
        assert time.monotonic() < deadline, [(p.metadata.name, p.spec.node_name) for p in pods]
        time.sleep(0.3)


def set_phase(api, pod, phase: str) -> None:
    from kubernetes import client

    client.CoreV1Api(api).patch_namespaced_pod_status(pod.metadata.name, NAMESPACE, {"status": {"phase": phase}})


def test_rendered_batch_manifests_validate_against_the_kubernetes_schemas():
    spec = batch_lib.BatchSpec(items=[f"media/{'a' * 25}{c}" for c in "abcde"], parallelism=2, image="dfp:1",
                               gateway="gw:50051", token_secret="team-token", gpus=1, node_selector={"pool": "gpu"})
    manifests = batch_lib.render(spec, "abcd1234")
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job", "Job"]
    shards = [v for k, v in manifests[0]["data"].items() if k.startswith("shard-")]
    assert sorted(sum((v.split() for v in shards), [])) == sorted(spec.items)
    for manifest in manifests:
        for version in ("1.25.0", "1.37.0"):
            kubernetes_validate.validate(manifest, version, strict=True)
    container = manifests[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["env"][1]["valueFrom"]["secretKeyRef"] == {"name": "team-token", "key": "token"}


REDTEAM_CONFIG = """
name: cluster-run
inputs: {max_side: 96, frames: 2}
animation: {sources: [SOURCE], drivers: [DRIVING]}
detectors: [{model: meso4, version: 1}]
sampling: {frame_count: 2}
bootstrap: 0
"""


def test_a_red_team_batch_is_one_job_reading_its_configuration_and_refuses_local_files():
    spec = batch_lib.BatchSpec(items=[], parallelism=1, image="dfp:1", gateway="gw:50051", token_secret="team-token",
                               task=batch_lib.REDTEAM)
    config = REDTEAM_CONFIG.replace("SOURCE", "media/aaaa").replace("DRIVING", "media/bbbb")
    manifests = batch_lib.render_redteam(spec, "abcd1234", config)
    assert [m["kind"] for m in manifests] == ["ConfigMap", "Job"]
    assert manifests[0]["data"]["redteam.yaml"] == config
    for manifest in manifests:
        kubernetes_validate.validate(manifest, "1.37.0", strict=True)
    container = manifests[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["command"][:3] == ["dfp", "redteam", "run"]
    assert {m["mountPath"] for m in container["volumeMounts"]} == {batch_lib.ITEMS_DIR, batch_lib.SCRATCH_DIR}
    with pytest.raises(batch_lib.BatchError, match="reads stored media only"):
        batch_lib.render_redteam(spec, "abcd1234", REDTEAM_CONFIG.replace("SOURCE", "video/source/s0.jpg")
                                 .replace("DRIVING", "media/bbbb"))
    with pytest.raises(batch_lib.BatchError, match="red-team configuration: unknown keys"):
        batch_lib.render_redteam(spec, "abcd1234", config + "surprise: 1\n")


def test_a_red_team_batch_runs_its_pods_command_and_collect_fetches_the_same_operations(
        api, kube, stack, shared, tmp_path):
    import yaml
    from kubernetes import client
    from PIL import Image

    from dfp.client import Client
    from tests.helpers import short_clip_with_audio

    Image.open(shared / "video" / "source" / "s3.jpg").convert("RGB").save(tmp_path / "portrait.png")
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "drive.mp4", frames=3, size=96)
    with Client(stack.gateway_target, token=stack.token) as gateway:
        source, driving = (gateway.upload(tmp_path / name).name for name in ("portrait.png", "drive.mp4"))
    (tmp_path / "config.yaml").write_text(REDTEAM_CONFIG.replace("SOURCE", source).replace("DRIVING", driving))
    kube_env = {"KUBECONFIG": str(kube.kubeconfig)}
    env = {**kube_env, "DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token}
    batch_id = json.loads(dfp("batch", "redteam", "--config", str(tmp_path / "config.yaml"), "--image", "dfp:test",
                              "--gateway", stack.gateway_target, "--token-secret", "team-token", "--json",
                              env=kube_env))["batch"]
    wait_pods(api, batch_id, 1)
    # Play the pod: its own command, with the ConfigMap's file and the scratch folder mapped here.
    job = client.BatchV1Api(api).read_namespaced_job(f"dfp-batch-{batch_id}-0", NAMESPACE)
    command = job.spec.template.spec.containers[0].command
    data = client.CoreV1Api(api).read_namespaced_config_map(f"dfp-batch-{batch_id}", NAMESPACE).data
    (tmp_path / "redteam.yaml").write_text(data["redteam.yaml"])
    arguments = [a.replace(f"{batch_lib.ITEMS_DIR}/redteam.yaml", str(tmp_path / "redteam.yaml"))
                 .replace(batch_lib.SCRATCH_DIR, str(tmp_path / "pod")) for a in command[1:]]
    pod_report = json.loads(dfp(*arguments, env=env))
    assert pod_report["name"] == "cluster-run" and pod_report["failed_steps"] == {}

    dfp("batch", "collect", batch_id, "--out", str(tmp_path / "collected"), env=env)
    pod_state = json.loads((tmp_path / "pod" / "run" / "state.json").read_text())
    collected_state = json.loads((tmp_path / "collected" / "state.json").read_text())
    operations = {k: v["operation"] for k, v in pod_state["steps"].items()}
    assert operations and {k: v["operation"] for k, v in collected_state["steps"].items()} == operations
    assert yaml.safe_load((tmp_path / "collected" / "config.yaml").read_text())["name"] == "cluster-run"
    assert (tmp_path / "collected" / "report.md").exists()


def test_a_batch_runs_as_jobs_on_the_gpu_node_retries_a_failed_pod_and_its_results_are_collected(
        api, kube, stack, shared, tmp_path):
    from kubernetes import client

    from dfp.client import Client

    with Client(stack.gateway_target, token=stack.token) as gateway:
        items = [gateway.upload(shared / "video" / "source" / "s0.jpg").name,
                 gateway.upload(shared / "video" / "driving" / "d9.mp4").name]
    client.CoreV1Api(api).create_namespaced_secret(NAMESPACE, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "team-token"}, "stringData": {"token": stack.token}})
    (tmp_path / "items.txt").write_text("\n".join(items) + "\n")
    kube_env = {"KUBECONFIG": str(kube.kubeconfig)}
    submitted = json.loads(dfp("batch", "detect", "--items", str(tmp_path / "items.txt"), "--parallelism", "2",
                               "--image", "dfp:test", "--gateway", stack.gateway_target, "--token-secret", "team-token",
                               "--gpus", "1", "--frames", "4", "--json", env=kube_env))
    batch_id = submitted["batch"]
    assert submitted["shards"] == 2

    pods = wait_pods(api, batch_id, 2)
    assert {pod.spec.node_name for pod in pods} == {"gpu-node"}  # the only node with a GPU

    # A pod that fails is replaced by the Job controller (backoffLimit), on the GPU node again.
    first = pods[0]
    set_phase(api, first, "Failed")
    replacement = [p for p in wait_pods(api, batch_id, 3) if p.metadata.name != first.metadata.name
                   and p.metadata.labels["dfp.io/shard"] == first.metadata.labels["dfp.io/shard"]]
    assert replacement and replacement[0].spec.node_name == "gpu-node"

    # Play each shard's pod: run its command against the gateway, then mark it done.
    config_map = client.CoreV1Api(api).read_namespaced_config_map(f"dfp-batch-{batch_id}", NAMESPACE)
    worker_rows = {}
    for shard, listing in config_map.data.items():
        if not shard.startswith("shard-"):
            continue
        (tmp_path / shard).write_text(listing)
        output = dfp("batch", "work", "--batch", batch_id, "--items", str(tmp_path / shard), "--frames", "4",
                     env={"DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token})
        for line in output.splitlines():
            row = json.loads(line)
            worker_rows[row["item"]] = row
    for pod in pods_of(api, batch_id):
        if pod.status.phase == "Pending":
            set_phase(api, pod, "Succeeded")
    status = json.loads(dfp("batch", "status", batch_id, "--wait", "60", "--json", env=kube_env))
    assert status["state"] == "Complete" and status["shards_done"] == 2

    env = {**kube_env, "DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token}
    dfp("batch", "collect", batch_id, "--out", str(tmp_path / "report.json"), env=env)
    rows = {row["item"]: row for row in map(json.loads, (tmp_path / "report.json").read_text().splitlines())}
    assert set(rows) == set(items) and not any(row["error"] for row in rows.values())
    assert rows[items[0]]["media_type"] == "image" and rows[items[0]]["label"] in ("REAL", "FAKE")
    assert rows[items[1]]["operation"] == worker_rows[items[1]]["operation"]  # fetched again, not redone

    dfp("batch", "cancel", batch_id, env=kube_env)
    deadline = time.monotonic() + 30
    while client.BatchV1Api(api).list_namespaced_job(NAMESPACE, label_selector=f"{batch_lib.LABEL}={batch_id}").items:
        assert time.monotonic() < deadline
        time.sleep(0.3)


def play_only_shard(api, batch_id, tmp_path, env) -> tuple[list[str], dict]:
    """Runs the single shard's pod command as the Job has it, the item list where the ConfigMap volume
    would put it; returns the command and its rows by item."""
    from kubernetes import client

    job = client.BatchV1Api(api).read_namespaced_job(f"dfp-batch-{batch_id}-0", NAMESPACE)
    command = job.spec.template.spec.containers[0].command
    listing = client.CoreV1Api(api).read_namespaced_config_map(f"dfp-batch-{batch_id}", NAMESPACE).data["shard-0"]
    (tmp_path / "shard-0").write_text(listing)
    items_at = command.index("--items") + 1
    arguments = [*command[1:items_at], str(tmp_path / "shard-0"), *command[items_at + 1:]]
    result = CliRunner().invoke(cli, arguments, env=env)
    assert result.exit_code == 0, result.output  # a missing item is final, not a reason to retry the pod
    return command, {row["item"]: row for row in map(json.loads, result.output.splitlines())}


def test_a_batch_enhancement_runs_each_pods_own_command_and_collects_the_results(api, kube, stack, shared, tmp_path):
    from kubernetes import client
    from PIL import Image

    from dfp.client import Client

    Image.open(shared / "video" / "source" / "s3.jpg").convert("RGB").resize((48, 56)).save(tmp_path / "small.png")
    with Client(stack.gateway_target, token=stack.token) as gateway:
        items = [gateway.upload(tmp_path / "small.png").name, "media/abcdefghijklmnopqrstuvwxyz"]
    (tmp_path / "items.txt").write_text("\n".join(items) + "\n")
    kube_env = {"KUBECONFIG": str(kube.kubeconfig)}
    env = {**kube_env, "DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token}
    batch_id = json.loads(dfp("batch", "enhance", "--items", str(tmp_path / "items.txt"), "--parallelism", "1",
                              "--model", "srvgg-x4", "--scale", "2", "--image", "dfp:test", "--gateway",
                              stack.gateway_target, "--token-secret", "team-token", "--json", env=kube_env))["batch"]
    command, worker = play_only_shard(api, batch_id, tmp_path, env)
    assert command[:3] == ["dfp", "batch", "work"] and command[-6:] == ["--task", "enhance", "--model", "srvgg-x4",
                                                                         "--scale", "2"]
    job = client.BatchV1Api(api).read_namespaced_job(f"dfp-batch-{batch_id}-0", NAMESPACE)
    assert "nvidia.com/gpu" not in str(job.spec.template.spec.containers[0].resources)
    assert (worker[items[0]]["width"], worker[items[0]]["height"]) == (96, 112)
    assert worker[items[1]]["error"].startswith("NOT_FOUND")

    dfp("batch", "collect", batch_id, "--out", str(tmp_path / "report.csv"), env=env)
    report = (tmp_path / "report.csv").read_text().splitlines()
    assert report[0].startswith("item,model,scale,result_media")
    assert worker[items[0]]["result_media"] in report[1] and worker[items[0]]["operation"] in report[1]


def test_a_batch_over_an_s3_prefix_imports_each_object_once_through_the_gateway(api, kube, stack, shared, tmp_path):
    import io

    from kubernetes import client as kube_client
    from PIL import Image

    from dfp.client import Client

    source = stack.s3.client()
    source.make_bucket("campaign-src")
    for key in ("2026/a.jpg", "2026/b.jpg", "2025/old.jpg"):
        buffer = io.BytesIO()
        Image.open(shared / "video" / "source" / "s3.jpg").convert("RGB").resize((120, 156)).save(buffer, "JPEG")
        source.put_object("campaign-src", key, io.BytesIO(buffer.getvalue()), len(buffer.getvalue()))
    source_env = {"DFP_SOURCE_S3_ENDPOINT": stack.s3.endpoint, "DFP_SOURCE_S3_ACCESS_KEY": stack.s3.access_key,
                  "DFP_SOURCE_S3_SECRET_KEY": stack.s3.secret_key, "DFP_SOURCE_S3_SECURE": "false"}
    kube_env = {"KUBECONFIG": str(kube.kubeconfig)}
    refused = CliRunner().invoke(cli, ["batch", "detect", "s3://campaign-src/2026/", "--image", "dfp:test", "--gateway",
                                       "g:1", "--token-secret", "t"], env={**kube_env, **source_env})
    assert refused.exit_code == 2 and "--source-secret" in refused.output
    batch_id = json.loads(dfp("batch", "detect", "s3://campaign-src/2026/", "--source-secret", "campaign-s3",
                              "--parallelism", "1", "--image", "dfp:test", "--gateway", stack.gateway_target,
                              "--token-secret", "team-token", "--json", env={**kube_env, **source_env}))["batch"]
    job = kube_client.BatchV1Api(api).read_namespaced_job(f"dfp-batch-{batch_id}-0", NAMESPACE)
    secret_refs = {e.name: e.value_from.secret_key_ref.name for e in job.spec.template.spec.containers[0].env
                   if e.value_from}
    assert secret_refs["DFP_SOURCE_S3_ENDPOINT"] == "campaign-s3" and secret_refs["DFP_TOKEN"] == "team-token"

    env = {**kube_env, **source_env, "DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token}
    _, first = play_only_shard(api, batch_id, tmp_path, env)
    assert sorted(first) == ["s3://campaign-src/2026/a.jpg", "s3://campaign-src/2026/b.jpg"]
    assert all(row["error"] == "" and row["media"].startswith("media/") and row["label"] for row in first.values())
    # The retried pod imports nothing again: each object has one media item, found by its label.
    _, again = play_only_shard(api, batch_id, tmp_path, env)
    assert {k: r["media"] for k, r in again.items()} == {k: r["media"] for k, r in first.items()}
    with Client(stack.gateway_target, token=stack.token) as gateway:
        imported = [m for m in gateway.list_media() if m.labels.get("dfp_batch") == batch_id]
    assert sorted(m.name for m in imported) == sorted(r["media"] for r in first.values())


def test_a_batch_animation_turns_each_pair_into_a_video_and_collects_the_same_operations(
        api, kube, stack, shared, tmp_path):
    from PIL import Image

    from dfp.client import Client
    from tests.helpers import short_clip_with_audio

    Image.open(shared / "video" / "source" / "s3.jpg").convert("RGB").resize((96, 112)).save(tmp_path / "portrait.png")
    short_clip_with_audio(shared / "video" / "driving" / "d12.mp4", tmp_path / "drive.mp4", frames=4, size=64)
    with Client(stack.gateway_target, token=stack.token) as gateway:
        pair = f"{gateway.upload(tmp_path / 'portrait.png').name} {gateway.upload(tmp_path / 'drive.mp4').name}"
    (tmp_path / "pairs.txt").write_text(pair + "\n")
    kube_env = {"KUBECONFIG": str(kube.kubeconfig)}
    env = {**kube_env, "DFP_GATEWAY": stack.gateway_target, "DFP_TOKEN": stack.token}
    refused = CliRunner().invoke(cli, ["batch", "animate", "--label", "a=b", "--image", "dfp:test", "--gateway", "g:1",
                                       "--token-secret", "t"], env=kube_env)
    assert refused.exit_code == 2 and "pairs" in refused.output
    batch_id = json.loads(dfp("batch", "animate", "--items", str(tmp_path / "pairs.txt"), "--mode", "absolute",
                              "--image", "dfp:test", "--gateway", stack.gateway_target, "--token-secret", "team-token",
                              "--json", env=kube_env))["batch"]
    command, worker = play_only_shard(api, batch_id, tmp_path, env)
    assert command[-4:] == ["--task", "animate", "--mode", "absolute"]
    assert worker[pair]["frames"] == 4 and worker[pair]["result_media"].startswith("media/")

    dfp("batch", "collect", batch_id, "--out", str(tmp_path / "report.json"), env=env)
    collected = json.loads((tmp_path / "report.json").read_text().splitlines()[0])
    assert collected["operation"] == worker[pair]["operation"]  # fetched again, not redone


def test_a_pod_asking_for_more_gpus_than_any_node_has_stays_unscheduled(api, kube, tmp_path):
    (tmp_path / "items.txt").write_text(f"media/{'b' * 26}\n")
    submitted = json.loads(dfp("batch", "detect", "--items", str(tmp_path / "items.txt"), "--image", "dfp:test",
                               "--gateway", "gw:50051", "--token-secret", "team-token", "--gpus", "4", "--json",
                               env={"KUBECONFIG": str(kube.kubeconfig)}))
    pods = wait_pods(api, submitted["batch"], 1, scheduled=False)
    time.sleep(3)
    pods = pods_of(api, submitted["batch"])
    assert [pod.spec.node_name for pod in pods] == [None]
    assert pods[0].status.phase == "Pending"


def test_the_charts_batch_role_is_enough_to_run_a_batch_and_nothing_more(api, kube, tmp_path):
    import os
    import subprocess

    import yaml
    from kubernetes import client, config

    helm = os.environ.get("DFP_HELM", str(pathlib.Path(__file__).resolve().parent.parent / ".build/tools/helm"))
    rendered = subprocess.run(
        [helm, "template", "release", str(pathlib.Path(__file__).resolve().parent.parent / "helm" / "dfp"),
         "--namespace", NAMESPACE, "--set", "batch.rbac.subjects[0].kind=Group",
         "--set", "batch.rbac.subjects[0].name=research",
         "--set", "batch.rbac.subjects[0].apiGroup=rbac.authorization.k8s.io"],
        check=True, capture_output=True, text=True).stdout
    rbac = client.RbacAuthorizationV1Api(api)
    for doc in yaml.safe_load_all(rendered):
        if doc and doc["kind"] == "Role":
            rbac.create_namespaced_role(NAMESPACE, doc)
        elif doc and doc["kind"] == "RoleBinding":
            rbac.create_namespaced_role_binding(NAMESPACE, doc)

    user_env = {"KUBECONFIG": str(kube.user_kubeconfig("batch-user"))}
    (tmp_path / "items.txt").write_text(f"media/{'c' * 26}\n")
    submitted = json.loads(dfp("batch", "detect", "--items", str(tmp_path / "items.txt"), "--image", "dfp:test",
                               "--gateway", "gw:50051", "--token-secret", "team-token", "--json", env=user_env))
    wait_pods(api, submitted["batch"], 1)
    assert "Running" in dfp("batch", "status", submitted["batch"], env=user_env)
    dfp("batch", "cancel", submitted["batch"], env=user_env)

    as_user = client.CoreV1Api(config.new_client_from_config(str(kube.user_kubeconfig("batch-user"))))
    for forbidden in (lambda: as_user.list_namespaced_secret(NAMESPACE), lambda: as_user.list_node(),
                      lambda: as_user.delete_namespaced_pod("any", NAMESPACE)):
        with pytest.raises(client.exceptions.ApiException) as error:
            forbidden()
        assert error.value.status == 403
