#!/usr/bin/env bash
# The pod sandbox ("pause") image, built locally: the Kubernetes module's own build/pause/linux/pause.c
# compiled static (as its Makefile does) and packed by buildah into an OCI archive for
# `ctr images import`. Writes pause.tar and image-name (the reference containerd pins as sandbox).
# Usage: build-pause.sh K8S_VERSION IMAGE_REPOSITORY OUT_DIR
set -euo pipefail
k8s=$1 repo=$2 out=$3
export GOTOOLCHAIN=local GOFLAGS=-mod=mod
work=$(mktemp -d "${out%/}.work.XXXX")
store=(--root "$work/storage" --runroot "$work/run" --storage-driver vfs)
cleanup() { buildah "${store[@]}" rm --all >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
dir=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
tag=$(sed -n 's/^TAG ?= *//p' "$dir/build/pause/Makefile")
[ -n "$tag" ] || { echo "[pause] no TAG in $dir/build/pause/Makefile" >&2; exit 1; }
image="$repo:$tag"
echo "[pause] compiling pause.c $tag from k8s.io/kubernetes@$k8s"
gcc -Os -Wall -Werror -static -DVERSION="v$tag-$k8s" -o "$work/pause" "$dir/build/pause/linux/pause.c"
strip "$work/pause"
echo "[pause] packing $image"
ctr=$(buildah "${store[@]}" from scratch)
buildah "${store[@]}" copy --chmod 0755 "$ctr" "$work/pause" /pause
buildah "${store[@]}" config --entrypoint '["/pause"]' --user 65535:65535 --os linux --arch amd64 "$ctr"
buildah "${store[@]}" commit --format oci --rm "$ctr" "$image"
mkdir -p "$out"
buildah "${store[@]}" push "$image" "oci-archive:$out/pause.tar:$image"
echo "$image" > "$out/image-name"
echo "[pause] built $image into $out"
