#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager from the k8s.io/kubernetes Go module.
# The release's go.mod points every staging module at ./staging (v0.0.0); a wrapper module
# replaces each with its published v0.N.x so the commands build from the module proxy.
# Usage: build-k8s.sh K8S_VERSION STAGING_VERSION OUT_DIR
set -euo pipefail
k8s=$1 stg=$2 out=$3
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-mod=mod
work=$(mktemp -d "${out%/}.work.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
printf 'module local/k8sbins\n\ngo 1.26.0\n' > go.mod
echo "[k8s] resolving k8s.io/kubernetes@$k8s"
gomod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for m in $(awk '$1 ~ /^k8s\.io\// && $2=="v0.0.0" {print $1}' "$gomod" | sort -u); do
  go mod edit -replace="$m=$m@$stg"
done
echo "[k8s] fetching modules (cold: ~1 GB)"
go get "k8s.io/kubernetes@$k8s"
go get k8s.io/kubernetes/cmd/kube-apiserver@"$k8s" k8s.io/kubernetes/cmd/kube-controller-manager@"$k8s"
echo "[k8s] compiling kube-apiserver and kube-controller-manager (cold: 10-20 min on 2 cores)"
mkdir -p "$work/bin"
go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=$k8s" -o "$work/bin/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
mkdir -p "$out"
mv "$work/bin/kube-apiserver" "$work/bin/kube-controller-manager" "$out/"
echo "[k8s] built into $out"
