#!/usr/bin/env bash
# A Debian 12 base image with Python 3.11 built from Debian packages alone (debootstrap), for
# machines that reach the Debian mirror and PyPI but no container registry (CI). Production
# builds FROM python:3.11-slim instead (see deploy/Dockerfile).
#
#   deploy/image/build-base.sh [IMAGE]        default IMAGE: localhost/zquant-base:bookworm
#
# Cached: nothing is done when IMAGE exists (`podman rmi IMAGE` to rebuild). Needs root,
# debootstrap and buildah. The mirror is the one apt uses here (ZQ_DEBIAN_MIRROR overrides).
# python3-distutils is listed because debootstrap does not resolve the virtual package
# python3.11-distutils that python3.11-venv depends on.
set -euo pipefail
image="${1:-localhost/zquant-base:bookworm}"

if podman image exists "$image"; then
    echo "build-base: $image exists (cached)"
    exit 0
fi

mirror="${ZQ_DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
    # deb822 (.sources: "URIs: …") or one-line ("deb URL suite …") apt sources, first Debian one.
    mirror=$(grep -hoE '^(URIs:[[:space:]]*|deb[[:space:]]+(\[[^]]*\][[:space:]]+)?)https?://[^[:space:]]+' \
                 /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
             | grep -v -- '-security' | head -n1 | grep -oE 'https?://[^[:space:]]+' || true)
fi
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs=$(mktemp -d /var/tmp/zquant-base.XXXXXX)
trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
echo "build-base: debootstrap bookworm from $mirror"
debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-distutils,ca-certificates,libseccomp2 \
    bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 \
    || { tail -n 20 "$rootfs.log" "$rootfs/debootstrap/debootstrap.log" >&2 2>/dev/null; exit 1; }
rm -f "$rootfs.log"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

container=$(buildah from scratch)
buildah copy "$container" "$rootfs" / >/dev/null
buildah config --env LANG=C.UTF-8 --cmd '["/usr/bin/python3.11"]' \
    --label org.opencontainers.image.description="Debian bookworm minbase + python3.11 (debootstrap)" \
    "$container"
buildah commit --quiet --rm "$container" "$image" >/dev/null
echo "build-base: $image built"
