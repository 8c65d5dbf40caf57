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
# The rule checks never discover targets: `remove_all_sd` leaves out the service-discovery plugins, 1,364 -> 1,117
# packages to compile (promtool still imports client-go and the cloud SDKs' auth for itself).
export GOFLAGS="$GOFLAGS -tags=remove_all_sd"
echo "[promtool] go install github.com/prometheus/prometheus/cmd/promtool@$ver"
go_install_into "$out" "github.com/prometheus/prometheus/cmd/promtool@$ver"
echo "[promtool] built into $out"
