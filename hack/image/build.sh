#!/usr/bin/env bash
# `make image`: builds the kubeq image (the repository's Dockerfile) with podman, cached by
# content: the tag is a hash of the base image, the Dockerfile and every file the build copies,
# so an unchanged tree reuses the stored image in seconds and any change builds a new one.
# The store lives under ~/.cache/kubeq/containers (hack/image/podman.sh).
#
# Base image (KUBEQ_BASE): "registry" = python:3.11-slim-bookworm from a registry;
# "debootstrap" = a Debian bookworm built here from Debian's archive (hack/image/base.sh);
# "auto" (default) = the registry image when it is present or can be pulled, else debootstrap.
# The registry is reached only when neither base is stored yet.
#
#   hack/image/build.sh          build if needed; the image reference is the last line printed
#   hack/image/build.sh --ref    print the reference the current tree builds to (no build)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
# shellcheck source=../progress.sh
source "$HERE/../progress.sh"
PODMAN="$HERE/podman.sh"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/image"
PYTHON_IMAGE="${KUBEQ_PYTHON_IMAGE:-docker.io/library/python:3.11-slim-bookworm}"
BASE_MODE="${KUBEQ_BASE:-auto}"
NAME=localhost/kubeq
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

base_ref() { # the base image to build FROM, building the debootstrap one when needed
  case "$BASE_MODE" in
    registry)
      "$PODMAN" image exists "$PYTHON_IMAGE" || "$PODMAN" pull -q "$PYTHON_IMAGE" >/dev/null
      echo "$PYTHON_IMAGE" ;;
    debootstrap) bash "$HERE/base.sh" >&2 && bash "$HERE/base.sh" --ref ;;
    auto)
      local deb
      deb="$(bash "$HERE/base.sh" --ref)"
      if "$PODMAN" image exists "$PYTHON_IMAGE"; then echo "$PYTHON_IMAGE"
      elif "$PODMAN" image exists "$deb"; then echo "$deb"
      elif "$PODMAN" pull -q "$PYTHON_IMAGE" >/dev/null 2>&1; then echo "$PYTHON_IMAGE"
      else
        echo "no container registry reachable: building the Python base with debootstrap" >&2
        bash "$HERE/base.sh" >&2 && echo "$deb"
      fi ;;
    *) echo "build.sh: KUBEQ_BASE must be auto, registry or debootstrap (got '$BASE_MODE')" >&2; exit 2 ;;
  esac
}

content_key() { # base image id + every input of the build, as one hash
  local base_id=$1
  {
    echo "$base_id"
    cd "$ROOT"
    find Dockerfile .dockerignore pyproject.toml README.md hack/install-venv.sh src \
      uv.lock hack/uv \
      -type f ! -path '*/__pycache__/*' ! -path '*.egg-info/*' ! -name '*.pyc' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum | cut -c1-12
}

if [[ ${1:-} == --ref ]]; then
  base="$(bash "$HERE/base.sh" --ref)"
  [[ $BASE_MODE == registry ]] && base=$PYTHON_IMAGE
  [[ $BASE_MODE == auto ]] && "$PODMAN" image exists "$PYTHON_IMAGE" && base=$PYTHON_IMAGE
  "$PODMAN" image exists "$base" || { echo "build.sh: no base image yet: run make image" >&2; exit 1; }
  echo "$NAME:src-$(content_key "$("$PODMAN" image inspect -f '{{.Id}}' "$base")")"
  exit 0
fi

bash "$HERE/../debs.sh" podman runc debootstrap catatonit
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9 # one build at a time per cache (several checkouts may share it)

base="$(base_ref)"
ref="$NAME:src-$(content_key "$("$PODMAN" image inspect -f '{{.Id}}' "$base")")"
if "$PODMAN" image exists "$ref"; then
  echo "kubeq image is up to date (base ${base})"
  "$PODMAN" tag "$ref" "$NAME:dev"
  echo "$ref"
  exit 0
fi

# The build reaches PyPI. Where a proxy's CA is trusted only by this host, the host's bundle is
# lent to the build read-only; it never becomes part of the image.
ca_mount=()
[[ -r $CA_BUNDLE ]] && ca_mount=(--volume "$CA_BUNDLE:$CA_BUNDLE:ro")
with_progress "podman build of the kubeq image FROM ${base}" "~2-3 min cold on 2 cores" \
  "$CACHE/build.log" \
  "$PODMAN" build --network host "${ca_mount[@]}" --build-arg "PYTHON_IMAGE=$base" \
  --tag "$ref" --tag "$NAME:dev" --file "$ROOT/Dockerfile" "$ROOT"
# Keep the three newest builds of the kubeq image and of each image built FROM it (the tests'
# and the demo's worker and Redis images); older ones only fill the disk.
for repo in $("$PODMAN" images --format '{{.Repository}}' | grep '^localhost/kubeq' \
  | grep -v -e '^localhost/kubeq-base$' -e '^localhost/kubeq-pause$' | sort -u); do
  "$PODMAN" images --filter "reference=$repo" --format '{{.Repository}}:{{.Tag}} {{.CreatedAt}}' \
    | grep -v ':dev ' | sort -k2 -r | tail -n +4 | cut -d' ' -f1 \
    | xargs -r "$PODMAN" rmi -f >/dev/null 2>&1 || true
done
"$PODMAN" image prune -f >/dev/null 2>&1 || true
echo "built $ref ($("$PODMAN" image inspect -f '{{.Size}}' "$ref" | awk '{printf "%.0f MB", $1/1e6}'))"
echo "$ref"
