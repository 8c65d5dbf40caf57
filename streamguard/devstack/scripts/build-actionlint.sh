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
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
echo "[actionlint] go install github.com/rhysd/actionlint/cmd/actionlint@$ver"
go_install_into "$out" "github.com/rhysd/actionlint/cmd/actionlint@$ver" "-X github.com/rhysd/actionlint.version=$ver"
echo "[actionlint] built into $out"
