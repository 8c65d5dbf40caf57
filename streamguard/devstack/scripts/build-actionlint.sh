#!/usr/bin/env bash
# Build actionlint (GitHub Actions workflow linter) with `go install` from the Go module proxy.
# Usage: build-actionlint.sh [VERSION] [OUT_DIR]
#   default VERSION v1.7.12, default OUT_DIR ~/.cache/streamguard/actionlint-VERSION
# Idempotent: does nothing when OUT_DIR/actionlint already exists.
set -euo pipefail
ver=${1:-v1.7.12}
cache=${STREAMGUARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/streamguard}
out=${2:-$cache/actionlint-$ver}
if [[ -x "$out/actionlint" ]]; then
  echo "[actionlint] $ver already in $out"
  exit 0
fi
export GOTOOLCHAIN=local CGO_ENABLED=0
tmp="$out.partial"
rm -rf "$tmp"
mkdir -p "$tmp"
echo "[actionlint] go install github.com/rhysd/actionlint/cmd/actionlint@$ver"
GOBIN="$tmp" go install -trimpath -ldflags "-s -w -X github.com/rhysd/actionlint.version=$ver" \
  "github.com/rhysd/actionlint/cmd/actionlint@$ver"
mkdir -p "$out"
mv "$tmp/actionlint" "$out/actionlint"
rmdir "$tmp"
echo "[actionlint] built into $out"
