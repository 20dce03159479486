#!/usr/bin/env bash
# The Python base image for machines that reach Debian's archive but no container registry:
# a minimal Debian bookworm (python3 3.11, like python:3.11-slim-bookworm) made by debootstrap
# and imported into kubeq's podman store. The tag carries a hash of this script, so changing a
# setting here builds a new base and an unchanged script reuses the stored one.
#   hack/image/base.sh            build the base if missing; print its reference last
#   hack/image/base.sh --ref      print the reference only
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../progress.sh
source "$HERE/../progress.sh"
PODMAN="$HERE/podman.sh"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/image"

SUITE=bookworm
MIRROR="${KUBEQ_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
INCLUDE=python3,python3-venv,ca-certificates
REF="localhost/kubeq-base:$(sha256sum "$HERE/base.sh" | cut -c1-12)"

if [[ ${1:-} == --ref ]]; then echo "$REF"; exit 0; fi
if "$PODMAN" image exists "$REF"; then echo "$REF"; exit 0; fi
command -v debootstrap >/dev/null || { echo "base.sh: debootstrap is missing (make image installs it)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "base.sh: debootstrap needs root" >&2; exit 1; }

mkdir -p "$CACHE"
ROOTFS="$(mktemp -d "$CACHE/rootfs.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT
with_progress "debootstrap ${SUITE} (${INCLUDE})" "~3 min cold on 2 cores" "$CACHE/debootstrap.log" \
  debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR"
# What an image never needs: package lists and caches, docs, man pages, translations.
rm -rf "$ROOTFS"/var/cache/apt/* "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/log/* \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/usr/share/locale/* "$ROOTFS"/tmp/*
tar --numeric-owner -C "$ROOTFS" -c . | "$PODMAN" import --quiet \
  --change 'ENV=LANG=C.UTF-8' --change 'CMD=["python3"]' - "$REF" >/dev/null
echo "$REF"
