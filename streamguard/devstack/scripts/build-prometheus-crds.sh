#!/usr/bin/env bash
# Generate the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule, ...) from the Go API types of
# github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring with controller-gen, the way
# upstream generates them. Tests install them so the chart's ServiceMonitor and PrometheusRule are judged
# by a real apiserver.
# Usage: build-prometheus-crds.sh [MONITORING_VERSION] [CONTROLLER_TOOLS_VERSION] [OUT_DIR]
set -euo pipefail
ver=${1:-v0.95.2}
tools=${2:-v0.23.0}
cache=${STREAMGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamguard}
out=${3:-$cache/prometheus-crds-$ver}
if [[ -f "$out/monitoring.coreos.com_servicemonitors.yaml" ]]; then
  echo "[prometheus-crds] $ver already in $out"
  exit 0
fi
export GOTOOLCHAIN=local CGO_ENABLED=0
work="$out.partial"
rm -rf "$work"
mkdir -p "$work/bin" "$work/mod" "$work/crds"
echo "[prometheus-crds] controller-gen $tools"
GOBIN="$work/bin" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$tools"
cd "$work/mod"
printf 'module local/promcrds\n\ngo 1.26.0\n' > go.mod
go get "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1@$ver"
src=$(go list -m -f '{{.Dir}}' github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring)
echo "[prometheus-crds] generating from $src/v1"
"$work/bin/controller-gen" crd:crdVersions=v1,allowDangerousTypes=true,maxDescLen=0 \
  paths="github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1" \
  output:crd:dir="$work/crds"
mkdir -p "$out"
cp "$work"/crds/*.yaml "$out/"
rm -rf "$work"
echo "[prometheus-crds] wrote $(ls "$out" | wc -l) CRDs into $out"
