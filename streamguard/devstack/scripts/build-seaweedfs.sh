#!/usr/bin/env bash
# Build SeaweedFS's `weed` (master, volume, filer and S3 gateway in one binary) from the Go module proxy.
# SeaweedFS is served as a pseudo-version of github.com/seaweedfs/seaweedfs; its go.mod has a replace
# directive, so `go install pkg@version` refuses it: the module is downloaded and built as the main module.
# Usage: build-seaweedfs.sh MODULE_VERSION OUT_DIR
set -euo pipefail
ver=$1 out=$2
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
export GOFLAGS="$GOFLAGS -mod=mod"
work=$(mktemp -d "${out%/}.work.XXXX")
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
echo "[seaweedfs] go mod download github.com/seaweedfs/seaweedfs@$ver"
src=$(go mod download -json "github.com/seaweedfs/seaweedfs@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
cp -r "$src/." "$work/"
chmod -R u+w "$work"
# Only the filer store the stack uses (leveldb2, the default) and the local notification log: the other stores,
# cloud remote storages, replication sinks and message queues are linked in by blank imports, and leaving them
# out spares compiling their clients (MongoDB, Cassandra, ArangoDB, HBase, MySQL, Redis, etcd, cloud SDKs).
sed -i -E '/^\s*_ "github.com\/seaweedfs\/seaweedfs\/weed\/(filer|remote_storage|replication\/sink|notification)\//{/\/(filer\/leveldb2|sink\/filersink|sink\/localsink|notification\/log)"/!d}' \
  "$work/weed/command/imports.go" "$work/weed/server/filer_server.go"
echo "[seaweedfs] compiling weed"
cd "$work"
nice -n 10 go build -trimpath -ldflags "-s -w" -o "$work/weed.bin" ./weed
mkdir -p "$out"
mv "$work/weed.bin" "$out/weed"
echo "[seaweedfs] built into $out"
