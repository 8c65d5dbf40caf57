#!/usr/bin/env bash
# Build etcd from go.etcd.io/etcd/server/v3 through a wrapper module (the server's own go.mod
# uses relative replaces, so `go install` of it fails).
# Usage: build-etcd.sh ETCD_VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
go_wrapper_module etcdbin "$out"
echo "[etcd] fetching go.etcd.io/etcd/server/v3@$ver"
go get "go.etcd.io/etcd/server/v3@$ver"
echo "[etcd] compiling"
go build -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3
mkdir -p "$out"
mv "$work/etcd" "$out/etcd"
echo "[etcd] built into $out"
