"""A real Kubernetes control plane on this machine, for the batch Job tests: etcd, kube-apiserver,
kube-controller-manager (the Job controller and the garbage collector) and kube-scheduler, built by
scripts/install_kube_control_plane.sh. There is no kubelet: nodes are API objects the caller
creates, pods are scheduled but never run, and a test sets their status itself.

The API server serves TLS on 127.0.0.1 with a self-signed certificate and static tokens: an admin
(group system:masters; `kubeconfig`) and, for RBAC tests, users in groups of the caller's choosing
(`user_kubeconfig(name)`); RBAC authorizes.
"""

from __future__ import annotations

import base64
import os
import pathlib
import secrets
import shutil
import subprocess
import time

from dfp.local_s3 import free_port

DEFAULT_BIN = pathlib.Path(os.environ.get("DFP_TOOLS_CACHE", pathlib.Path.home() / ".cache" / "dfp-tools")) \
    / "kube-1.20.2" / "bin"


class LocalKube:
    def __init__(self, workdir: pathlib.Path, bin_dir: pathlib.Path = DEFAULT_BIN,
                 users: dict[str, str] | None = None):
        self.workdir = pathlib.Path(workdir)
        self.bin_dir = pathlib.Path(bin_dir)
        self.token = secrets.token_hex(16)
        self.users = {name: (group, secrets.token_hex(16)) for name, group in (users or {}).items()}
        self.port = free_port()
        self.kubeconfig = self.workdir / "kubeconfig"
        self._processes: list[subprocess.Popen] = []

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def _spawn(self, name: str, command: list[str]) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self._processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                                    start_new_session=True))

    def _certificates(self) -> None:
        openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                   "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                   "-keyout", str(self.workdir / "apiserver.key"), "-out", str(self.workdir / "apiserver.crt")]
        subprocess.run(openssl, check=True, capture_output=True)
        subprocess.run(["openssl", "genrsa", "-out", str(self.workdir / "sa.key"), "2048"], check=True,
                       capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(self.workdir / "sa.key"), "-pubout", "-out",
                        str(self.workdir / "sa.pub")], check=True, capture_output=True)
        lines = [f"{self.token},admin,admin,system:masters"]
        lines += [f"{token},{name},{name},{group}" for name, (group, token) in self.users.items()]
        (self.workdir / "tokens.csv").write_text("\n".join(lines) + "\n")
        self._write_kubeconfig(self.kubeconfig, "admin", self.token)

    def user_kubeconfig(self, name: str) -> pathlib.Path:
        """A kubeconfig that acts as one of the ``users``."""
        path = self.workdir / f"kubeconfig-{name}"
        self._write_kubeconfig(path, name, self.users[name][1])
        return path

    def _write_kubeconfig(self, path: pathlib.Path, user: str, token: str) -> None:
        certificate = (self.workdir / "apiserver.crt").read_bytes()
        path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: {self.server}
    certificate-authority-data: {base64.b64encode(certificate).decode()}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: local
  context: {{cluster: local, user: {user}, namespace: default}}
current-context: local
""")

    def start(self, timeout_s: float = 120.0) -> "LocalKube":
        for binary in ("kube-apiserver", "kube-controller-manager", "kube-scheduler"):
            if not (self.bin_dir / binary).exists():
                raise FileNotFoundError(f"{self.bin_dir / binary} is missing; run scripts/install_kube_control_plane.sh")
        if shutil.which("etcd") is None:
            raise FileNotFoundError("etcd is not installed (apt-get install etcd-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._certificates()
        etcd_port, peer_port = free_port(), free_port()
        try:
            self._spawn("etcd", ["etcd", "--data-dir", str(self.workdir / "etcd"),
                                 "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
                                 "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
                                 "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
                                 "--initial-cluster", f"default=http://127.0.0.1:{peer_port}"])
            self._spawn("kube-apiserver", [
                str(self.bin_dir / "kube-apiserver"), f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
                "--insecure-port=0", f"--tls-cert-file={self.workdir / 'apiserver.crt'}",
                f"--tls-private-key-file={self.workdir / 'apiserver.key'}",
                f"--token-auth-file={self.workdir / 'tokens.csv'}", "--authorization-mode=RBAC",
                f"--service-account-key-file={self.workdir / 'sa.pub'}",
                f"--service-account-signing-key-file={self.workdir / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc", "--service-cluster-ip-range=10.0.0.0/24",
                # No kubelet mounts service account tokens, and no node lifecycle controller would ever
                # lift a new node's not-ready taint: both admission steps are off.
                "--disable-admission-plugins=ServiceAccount,TaintNodesByCondition"])
            self._wait_ready(timeout_s)
            for name, extra in (("kube-controller-manager", ["--controllers=job,garbagecollector"]),
                                ("kube-scheduler", [])):
                self._spawn(name, [str(self.bin_dir / name), f"--kubeconfig={self.kubeconfig}", "--leader-elect=false",
                                   "--bind-address=127.0.0.1", f"--secure-port={free_port()}", "--port=0",
                                   f"--cert-dir={self.workdir / name}-certs", *extra])
        except BaseException:
            self.stop()
            raise
        return self

    def api_client(self):
        from kubernetes import config

        return config.new_client_from_config(str(self.kubeconfig))

    def _wait_ready(self, timeout_s: float) -> None:
        import ssl
        import urllib.request

        context = ssl.create_default_context(cafile=str(self.workdir / "apiserver.crt"))
        request = urllib.request.Request(f"{self.server}/readyz", headers={"Authorization": f"Bearer {self.token}"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args[0]} exited with {process.returncode}; see {self.workdir}")
            try:
                with urllib.request.urlopen(request, context=context, timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"kube-apiserver not ready after {timeout_s:.0f} s; see {self.workdir}")

    def stop(self) -> None:
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        self._processes.clear()

    def __enter__(self) -> "LocalKube":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
