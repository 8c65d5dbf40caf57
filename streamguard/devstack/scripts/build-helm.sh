#!/usr/bin/env bash
# Build helm with `go install` (its module has no replace directives).
# Usage: build-helm.sh HELM_VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
echo "[helm] go install helm.sh/helm/v3/cmd/helm@$ver"
go_install_into "$out" "helm.sh/helm/v3/cmd/helm@$ver" "-X helm.sh/helm/v3/internal/version.version=$ver"
echo "[helm] built into $out"
