#!/usr/bin/env bash
# Build helm with `go install` (its module has no replace directives).
# Usage: build-helm.sh HELM_VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$out.tmp"
echo "[helm] go install helm.sh/helm/v3/cmd/helm@$ver"
GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$ver" \
  "helm.sh/helm/v3/cmd/helm@$ver"
mkdir -p "$out"
mv "$out.tmp/helm" "$out/helm"
rmdir "$out.tmp"
echo "[helm] built into $out"
