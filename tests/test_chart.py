"""The Helm chart, rendered by the real helm binary and validated against the Kubernetes schemas."""

import os
import pathlib
import subprocess

import kubernetes_validate
import pytest
import yaml

REPO = pathlib.Path(__file__).resolve().parent.parent
CHART = REPO / "helm" / "dfp"
HELM = os.environ.get("DFP_HELM", str(REPO / ".build" / "tools" / "helm"))
SCENARIOS = [None, *sorted(p.name for p in (CHART / "ci").glob("*-values.yaml"))]
KUBERNETES_VERSIONS = ["1.25.0", "1.30.0", "1.37.0"]


def helm(*args, check=True):
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=check)


def render(values_file=None, *sets):
    args = ["template", "release", str(CHART), "--namespace", "dfp"]
    if values_file:
        args += ["-f", str(CHART / "ci" / values_file)]
    for item in sets:
        args += ["--set", item]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


@pytest.mark.parametrize("values_file", SCENARIOS, ids=lambda v: v or "defaults")
def test_chart_lints_strictly_and_every_manifest_validates(values_file):
    args = ["lint", "--strict", str(CHART)] + (["-f", str(CHART / "ci" / values_file)] if values_file else [])
    result = helm(*args, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    for doc in render(values_file):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container(deployment, name):
    return next(c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def test_gpu_values_request_a_quoted_gpu_and_schedule_on_gpu_nodes():
    docs = render("gpu-values.yaml")
    detector = by_kind(docs, "Deployment")["release-dfp-detector"]
    assert container(detector, "tf-serving")["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert detector["spec"]["template"]["spec"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in detector["spec"]["template"]["spec"]["tolerations"])
    assert "nvidia.com/gpu: \"1\"" in helm("template", "r", str(CHART), "-f", str(CHART / "ci" / "gpu-values.yaml")).stdout


def test_animation_model_runs_torchserve_on_a_gpu_reachable_only_from_the_gateway():
    docs = render("gpu-values.yaml")
    animate = by_kind(docs, "Deployment")["release-dfp-animate"]
    torchserve = container(animate, "torchserve")
    assert torchserve["command"][:3] == ["python", "-m", "services.creator.serving"]
    assert torchserve["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert torchserve["readinessProbe"]["httpGet"]["path"] == "/ping"
    gateway_env = {e["name"]: e.get("value") for e in container(by_kind(docs, "Deployment")["release-dfp-gateway"], "gateway")["env"]}
    assert gateway_env["DFP_CREATOR_TARGET"] == "release-dfp-animate:7070"
    policy = by_kind(docs, "NetworkPolicy")["release-dfp-animate"]
    allowed = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert allowed["app.kubernetes.io/component"] == "gateway"


def test_every_service_is_annotated_for_scraping_and_its_metrics_port_is_open_to_the_scrapers():
    docs = render()
    deployments, policies = by_kind(docs, "Deployment"), by_kind(docs, "NetworkPolicy")
    expected = {"gateway": ("9100", "/metrics"), "animate": ("8082", "/metrics"), "enhancer": ("9102", "/metrics"),
                "detector": ("8501", "/monitoring/prometheus/metrics")}
    for component, (port, path) in expected.items():
        annotations = deployments[f"release-dfp-{component}"]["spec"]["template"]["metadata"]["annotations"]
        assert (annotations["prometheus.io/scrape"], annotations["prometheus.io/port"],
                annotations["prometheus.io/path"]) == ("true", port, path), component
    torchserve = container(deployments["release-dfp-animate"], "torchserve")
    assert torchserve["command"][torchserve["command"].index("--metrics-port") + 1] == "8082"
    tf_serving = container(deployments["release-dfp-detector"], "tf-serving")
    assert "--monitoring_config_file=/config/monitoring.config" in tf_serving["args"]
    config = by_kind(docs, "ConfigMap")["release-dfp-detector"]["data"]["monitoring.config"]
    assert "enable: true" in config and "/monitoring/prometheus/metrics" in config
    for component in ("animate", "enhancer"):
        rules = policies[f"release-dfp-{component}"]["spec"]["ingress"]
        assert rules[1] == {"from": [{"namespaceSelector": {}}], "ports": [{"port": "metrics"}]}
    # With no scrapers listed, only the gateway gets in.
    closed = by_kind(render(None, "metricsScrapers=null"), "NetworkPolicy")
    assert len(closed["release-dfp-enhancer"]["spec"]["ingress"]) == 1


def test_the_enhancer_runs_on_a_gpu_with_grpc_probes_reachable_only_from_the_gateway():
    docs = render("gpu-values.yaml")
    enhancer = container(by_kind(docs, "Deployment")["release-dfp-enhancer"], "enhancer")
    assert enhancer["command"] == ["python", "-m", "services.enhancer.server", "--preload", "esrgan-x4"]
    assert enhancer["resources"]["limits"]["nvidia.com/gpu"] == "1"
    # gpu-values turns mutual TLS on: the probes use the plaintext health-only port.
    assert enhancer["readinessProbe"]["grpc"]["port"] == enhancer["livenessProbe"]["grpc"]["port"] == 8087
    assert container(by_kind(render(), "Deployment")["release-dfp-enhancer"], "enhancer")["readinessProbe"]["grpc"]["port"] == 50053
    env = {e["name"]: e.get("value") for e in enhancer["env"]}
    assert env["DFP_ENHANCER_LISTEN"] == "0.0.0.0:50053" and env["DFP_ENHANCER_HALF"] == "1"
    assert "DFP_S3_SECRET_KEY" in env
    gateway_env = {e["name"]: e.get("value") for e in container(by_kind(docs, "Deployment")["release-dfp-gateway"], "gateway")["env"]}
    assert gateway_env["DFP_ENHANCER_TARGET"] == "release-dfp-enhancer:50053"
    allowed = by_kind(docs, "NetworkPolicy")["release-dfp-enhancer"]["spec"]["ingress"][0]["from"][0]["podSelector"]
    assert allowed["matchLabels"]["app.kubernetes.io/component"] == "gateway"


def test_the_published_dfdnet_files_can_be_mounted_into_the_enhancer():
    docs = render(None, "enhancer.env.DFP_DFDNET_CHECKPOINT=/dfdnet/DFDNet_official.pth",
                  "enhancer.extraVolumes[0].name=dfdnet", "enhancer.extraVolumes[0].persistentVolumeClaim.claimName=dfdnet",
                  "enhancer.extraVolumeMounts[0].name=dfdnet", "enhancer.extraVolumeMounts[0].mountPath=/dfdnet")
    deployment = by_kind(docs, "Deployment")["release-dfp-enhancer"]
    enhancer = container(deployment, "enhancer")
    assert {"name": "DFP_DFDNET_CHECKPOINT", "value": "/dfdnet/DFDNet_official.pth"} in enhancer["env"]
    assert {"name": "dfdnet", "mountPath": "/dfdnet"} in enhancer["volumeMounts"]
    assert {"name": "dfdnet", "persistentVolumeClaim": {"claimName": "dfdnet"}} in deployment["spec"]["template"]["spec"]["volumes"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.30.0", strict=True)


def test_the_creator_reads_the_registry_for_face_swap_models():
    torchserve = container(by_kind(render("gpu-values.yaml"), "Deployment")["release-dfp-animate"], "torchserve")
    env = {e["name"]: e.get("value") for e in torchserve["env"]}
    assert env["DFP_SWAP_REGISTRY_SYNC"] == "1" and env["DFP_CREATOR_POLL_S"] == "30"
    assert "DFP_S3_ENDPOINT" in env and "DFP_S3_SECRET_KEY" in env


def test_cpu_only_values_request_no_gpu():
    docs = render("cpu-only-values.yaml")
    detector = by_kind(docs, "Deployment")["release-dfp-detector"]
    assert "nvidia.com/gpu" not in str(detector)
    assert "nvidia.com/gpu" not in str(by_kind(docs, "Deployment")["release-dfp-animate"])
    assert "nvidia.com/gpu" not in str(by_kind(docs, "Deployment")["release-dfp-enhancer"])
    assert container(detector, "tf-serving")["image"] == "tensorflow/serving:2.18.0"
    assert not by_kind(docs, "HorizontalPodAutoscaler")


def test_selectors_are_the_minimal_labels_and_match_the_pods():
    for deployment in by_kind(render(), "Deployment").values():
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert set(selector) == {"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/component"}
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_gateway_probes_use_grpc_health_and_reads_s3_credentials_from_a_secret():
    docs = render()
    gateway = container(by_kind(docs, "Deployment")["release-dfp-gateway"], "gateway")
    assert gateway["readinessProbe"]["grpc"]["port"] == 8086
    env = {e["name"]: e for e in gateway["env"]}
    assert env["DFP_HEALTH_LISTEN"]["value"] == "0.0.0.0:8086" and "DFP_TLS_CERT" not in env
    assert env["DFP_METRICS_LISTEN"]["value"] == "0.0.0.0:9100"
    assert env["DFP_S3_SECRET_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "release-dfp-s3"
    assert env["DFP_DETECTOR_TARGET"]["value"] == "release-dfp-detector:8500"
    secret = by_kind(docs, "Secret")["release-dfp-s3"]
    assert set(secret["data"]) == {"accessKey", "secretKey"}


def test_gateway_tls_comes_from_a_tls_secret_while_probes_stay_on_the_health_port():
    docs = render(None, "gateway.tls.secretName=dfp-gateway-tls")
    deployment = by_kind(docs, "Deployment")["release-dfp-gateway"]
    gateway = container(deployment, "gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert (env["DFP_TLS_CERT"], env["DFP_TLS_KEY"]) == ("/etc/dfp/tls/tls.crt", "/etc/dfp/tls/tls.key")
    assert gateway["volumeMounts"] == [{"name": "tls", "mountPath": "/etc/dfp/tls", "readOnly": True}]
    assert deployment["spec"]["template"]["spec"]["volumes"][0]["secret"]["secretName"] == "dfp-gateway-tls"
    assert gateway["livenessProbe"]["grpc"]["port"] == 8086


def test_the_c2pa_signing_identity_comes_from_its_own_secret_beside_tls():
    docs = render(None, "gateway.tls.secretName=dfp-gateway-tls", "gateway.contentCredentials.secretName=dfp-c2pa")
    deployment = by_kind(docs, "Deployment")["release-dfp-gateway"]
    gateway = container(deployment, "gateway")
    env = {e["name"]: e.get("value") for e in gateway["env"]}
    assert (env["DFP_C2PA_CERT"], env["DFP_C2PA_KEY"]) == ("/etc/dfp/c2pa/signer-chain.pem", "/etc/dfp/c2pa/signer-key.pem")
    assert {m["name"]: m["mountPath"] for m in gateway["volumeMounts"]} == {"tls": "/etc/dfp/tls", "c2pa": "/etc/dfp/c2pa"}
    volumes = {v["name"]: v["secret"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["c2pa"] == {"secretName": "dfp-c2pa", "defaultMode": 0o400}
    defaults = container(by_kind(render(), "Deployment")["release-dfp-gateway"], "gateway")
    assert "DFP_C2PA_KEY" not in {e["name"] for e in defaults["env"]}


def test_internal_mutual_tls_gives_the_gateway_enhancer_and_tf_serving_the_secret():
    docs = render(None, "internalTls.secretName=dfp-mtls")
    deployments = by_kind(docs, "Deployment")
    expected = {"DFP_MTLS_CA": "/etc/dfp/mtls/ca.crt", "DFP_MTLS_CERT": "/etc/dfp/mtls/tls.crt",
                "DFP_MTLS_KEY": "/etc/dfp/mtls/tls.key"}
    for component, name in (("gateway", "gateway"), ("enhancer", "enhancer")):
        serving = container(deployments[f"release-dfp-{component}"], name)
        env = {e["name"]: e.get("value") for e in serving["env"]}
        assert {k: env[k] for k in expected} == expected, component
        assert {"name": "mtls", "mountPath": "/etc/dfp/mtls", "readOnly": True} in serving["volumeMounts"]
    detector = deployments["release-dfp-detector"]["spec"]["template"]["spec"]
    init = next(c for c in detector["initContainers"] if c["name"] == "ssl-config")
    assert "write_tf_serving_ssl_config" in init["command"][-1]
    assert "--ssl_config_file=/ssl/ssl.config" in container(deployments["release-dfp-detector"], "tf-serving")["args"]
    volumes = {v["name"]: v for v in detector["volumes"]}
    assert volumes["mtls"]["secret"]["secretName"] == "dfp-mtls" and volumes["ssl-config"]["emptyDir"]["medium"] == "Memory"
    plain = by_kind(render(), "Deployment")
    assert "DFP_MTLS_CA" not in {e["name"] for e in container(plain["release-dfp-gateway"], "gateway")["env"]}
    assert "--ssl_config_file=/ssl/ssl.config" not in container(plain["release-dfp-detector"], "tf-serving")["args"]


def test_external_s3_uses_the_given_secret_and_runs_no_minio():
    docs = render("external-s3-values.yaml")
    assert not by_kind(docs, "StatefulSet") and not by_kind(docs, "Secret")
    gateway = container(by_kind(docs, "Deployment")["release-dfp-gateway"], "gateway")
    env = {e["name"]: e for e in gateway["env"]}
    assert env["DFP_S3_ENDPOINT"]["value"] == "s3.eu-west-1.amazonaws.com"
    assert env["DFP_S3_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "dfp-s3-credentials"


@pytest.mark.parametrize(
    "bad,message",
    [
        ("detector.gpu.count=1", "want string"),
        ("gateway.replicas=3", "additional properties"),
        ("storage.mode=external", "minLength"),
        ("detector.image.pullPolicy=Sometimes", "must be one of"),
        ("gateway.env.PATH=/tmp", "PATH"),
    ],
)
def test_bad_values_fail_at_install_time(bad, message):
    result = helm("template", "release", str(CHART), "--set", bad, check=False)
    assert result.returncode != 0 and message in result.stderr


def test_dockerfiles_pin_their_bases_and_drop_root():
    for dockerfile in (REPO / "docker").glob("*.Dockerfile"):
        lines = dockerfile.read_text().splitlines()
        bases = [line.split()[1] for line in lines if line.startswith("FROM ")]
        assert bases and all(":" in b and not b.endswith(":latest") for b in bases), dockerfile
        assert any(line.startswith("USER ") and line.split()[1] not in ("root", "0") for line in lines), dockerfile
