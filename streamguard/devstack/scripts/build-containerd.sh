#!/usr/bin/env bash
# Build containerd 2.x (daemon, ctr client, runc v2 shim) from its Go module with CGO off: a static
# build needs no C toolchain, and the cgo-only plugins (btrfs snapshotter) are not used by the node.
# The version is stamped so the node reports containerd://VERSION to the apiserver.
# Usage: build-containerd.sh VERSION OUT_DIR      (VERSION like v2.4.2)
set -euo pipefail
ver=$1 out=$2
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
go_wrapper_module containerdbins "$out"
mod=github.com/containerd/containerd/v2
cmds="containerd ctr containerd-shim-runc-v2"
echo "[containerd] fetching $mod@$ver"
for c in $cmds; do go get "$mod/cmd/$c@$ver"; done
echo "[containerd] compiling $cmds"
mkdir -p "$work/bin"
# shellcheck disable=SC2046
go build -trimpath -ldflags "-s -w -X $mod/version.Version=${ver#v} -X $mod/version.Revision=$ver" \
  -o "$work/bin/" $(for c in $cmds; do echo "$mod/cmd/$c"; done)
mkdir -p "$out"
for c in $cmds; do mv "$work/bin/$c" "$out/"; done
echo "[containerd] built into $out"
