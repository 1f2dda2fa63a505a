#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver, kube-controller-manager, kube-scheduler
# 1.20.2) from Debian's vendored source package, for the batch Job tests, into $1 (default
# ~/.cache/dfp-tools/kube-1.20.2, outside the clone, so a machine builds it once). etcd comes from
# apt. No release binaries are reachable from here; Debian's archive and golang-go are.
# Takes about 6 minutes on 2 cores and 1.5 GB of disk while building.
set -euo pipefail
dest="${1:-${DFP_TOOLS_CACHE:-$HOME/.cache/dfp-tools}/kube-1.20.2}"
if [[ -x "$dest/bin/kube-apiserver" && -x "$dest/bin/kube-controller-manager" && -x "$dest/bin/kube-scheduler" ]]; then
  exit 0
fi

sudo_if_needed() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v go >/dev/null || missing+=(golang-go)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v rsync >/dev/null || missing+=(rsync)
if ((${#missing[@]})); then
  sudo_if_needed apt-get install -y -q "${missing[@]}" >/dev/null
fi

tarball="kubernetes_1.20.5+really1.20.2.orig.tar.gz"
sha256="b83c0780efb182d928dc63d46488a847f161f04e40a94b96bf5247dd671ecdfc"
mkdir -p "$dest"
work="$(mktemp -d "$dest/.build.XXXXXX")"
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
curl -fsS -o "$work/$tarball" "http://deb.debian.org/debian/pool/main/k/kubernetes/$tarball"
echo "$sha256  $work/$tarball" | sha256sum -c --quiet
mkdir -p "$work/gopath/src/k8s.io"
tar xzf "$work/$tarball" -C "$work/gopath/src/k8s.io"
mv "$work/gopath/src/k8s.io/kubernetes-1.20.2" "$work/gopath/src/k8s.io/kubernetes"

export GOPATH="$work/gopath" GOCACHE="$work/gocache" GO111MODULE=off GOFLAGS=
cd "$GOPATH/src/k8s.io/kubernetes"
make gen_openapi >/dev/null
go build -o "$work/bin/" ./cmd/kube-apiserver ./cmd/kube-controller-manager ./cmd/kube-scheduler
mkdir -p "$dest/bin"
install -m 0755 "$work"/bin/kube-* "$dest/bin/"
"$dest/bin/kube-apiserver" --version
