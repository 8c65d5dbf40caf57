#!/usr/bin/env bash
# A Debian base image root filesystem from Debian's archive (no registry): debootstrap --variant=minbase,
# trimmed like the official slim images (no docs, man pages or locales; no apt caches), packed as
# rootfs.tar for `buildah add`. Apt inside keeps using the same mirror(s).
# Usage: build-debian-base.sh SUITE MIRROR SECURITY_MIRROR OUT_DIR   (SECURITY_MIRROR may be "")
set -euo pipefail
suite=$1 mirror=$2 security=$3 out=$4
work=$(mktemp -d "${out%/}.work.XXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
echo "[debian] debootstrap --variant=minbase $suite from $mirror"
debootstrap --variant=minbase "$suite" "$root" "$mirror"
cat > "$root/etc/dpkg/dpkg.cfg.d/streamguard-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
CFG
{
  echo "deb $mirror $suite main"
  echo "deb $mirror $suite-updates main"
  [ -z "$security" ] || echo "deb $security $suite-security main"
} > "$root/etc/apt/sources.list"
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/man" "$root/usr/share/info" "$root/usr/share/locale" -mindepth 1 -not -name locale.alias \
  -not -type d -delete 2>/dev/null || true
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
mkdir -p "$out"
tar --numeric-owner --xattrs -C "$root" -cf "$out/rootfs.tar" .
echo "$suite" > "$out/suite"
echo "[debian] $(du -sh "$root" | cut -f1) root filesystem packed into $out/rootfs.tar"
