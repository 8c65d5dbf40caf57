#!/usr/bin/env bash
# Build promtool (Prometheus 3.x rule checker) with `go install` from the Go module proxy.
# Prometheus 3.x is published as Go module versions v0.3xx.y (v0.316.0 is Prometheus 3.16.0).
# Usage: build-promtool.sh MODULE_VERSION OUT_DIR   (e.g. v0.316.0 ~/.cache/streamguard/promtool-v0.316.0)
set -euo pipefail
ver=$1 out=$2
if [[ -x "$out/promtool" ]]; then
  echo "[promtool] cached in $out"
  exit 0
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
echo "[promtool] go install github.com/prometheus/prometheus/cmd/promtool@$ver"
go_install_into "$out" "github.com/prometheus/prometheus/cmd/promtool@$ver"
echo "[promtool] built into $out"
