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
export GOTOOLCHAIN=local CGO_ENABLED=0
mkdir -p "$out.tmp"
echo "[promtool] go install github.com/prometheus/prometheus/cmd/promtool@$ver"
GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w" "github.com/prometheus/prometheus/cmd/promtool@$ver"
mkdir -p "$out"
mv "$out.tmp/promtool" "$out/promtool"
rmdir "$out.tmp"
echo "[promtool] built into $out"
