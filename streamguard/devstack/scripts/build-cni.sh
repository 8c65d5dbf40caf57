#!/usr/bin/env bash
# Build the CNI plugins the node's pod network uses (bridge + host-local IPAM, loopback, portmap) from
# the containernetworking/plugins Go module.
# Usage: build-cni.sh VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
go_wrapper_module cnibins "$out"
mod=github.com/containernetworking/plugins
plugins="main/bridge main/loopback ipam/host-local meta/portmap"
echo "[cni] fetching $mod@$ver"
go get "$mod@$ver"
echo "[cni] compiling $plugins"
mkdir -p "$work/bin"
# shellcheck disable=SC2046
go build -trimpath -ldflags "-s -w" -o "$work/bin/" $(for p in $plugins; do echo "$mod/plugins/$p"; done)
mkdir -p "$out"
mv "$work"/bin/* "$out/"
echo "[cni] built into $out"
