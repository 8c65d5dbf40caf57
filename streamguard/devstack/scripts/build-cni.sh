#!/usr/bin/env bash
# Build the CNI plugins the node's pod network uses (bridge + host-local IPAM, loopback, portmap) from
# the containernetworking/plugins Go module.
# Usage: build-cni.sh VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
work=$(mktemp -d "${out%/}.work.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'module local/cnibins\n\ngo 1.26.0\n' > go.mod
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
