#!/usr/bin/env bash
# Build the named commands of the k8s.io/kubernetes Go module (the control plane and the node's kubelet and
# kube-proxy) in one `go build`, so the packages they share compile once.
# The release's go.mod points every staging module at ./staging (v0.0.0); a wrapper module
# replaces each with its published v0.N.x so the commands build from the module proxy.
# Usage: build-k8s.sh K8S_VERSION STAGING_VERSION OUT_DIR COMMAND...
set -euo pipefail
k8s=$1 stg=$2 out=$3
shift 3
source "$(dirname "${BASH_SOURCE[0]}")/lib-go.sh"
go_wrapper_module k8sbins "$out"
echo "[k8s] resolving k8s.io/kubernetes@$k8s"
gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$gomod" | sort -u); do
  go mod edit -replace="$m=$m@$stg"
done
echo "[k8s] fetching modules (cold: ~1 GB)"
go get "k8s.io/kubernetes@$k8s"
cmds="$*"
for c in $cmds; do go get "k8s.io/kubernetes/cmd/$c@$k8s"; done
echo "[k8s] compiling $cmds (cold: 15-25 min on 2 cores)"
mkdir -p "$work/bin"
# shellcheck disable=SC2046
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s" -o "$work/bin/" \
  $(for c in $cmds; do echo "k8s.io/kubernetes/cmd/$c"; done)
mkdir -p "$out"
for c in $cmds; do mv "$work/bin/$c" "$out/"; done
echo "[k8s] built into $out"
