#!/usr/bin/env bash
# The pod sandbox ("pause") image of the real node, without a registry: Debian's static
# catatonit as /pause (what the upstream pause image does: reap zombies, wait for a signal).
# Tagged by a hash of the binary and this script; stored in kubeq's podman store.
#   hack/image/pause.sh          build if missing; print the reference last
#   hack/image/pause.sh --ref    print the reference only
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PODMAN="$HERE/podman.sh"
CATATONIT="${KUBEQ_CATATONIT:-/usr/bin/catatonit}"
[[ -x $CATATONIT ]] || { echo "pause.sh: $CATATONIT missing (Debian package catatonit)" >&2; exit 1; }
REF="localhost/kubeq-pause:$(cat "$CATATONIT" "$HERE/pause.sh" | sha256sum | cut -c1-12)"
if [[ ${1:-} == --ref ]]; then echo "$REF"; exit 0; fi
if ! "$PODMAN" image exists "$REF"; then
  ctx="$(mktemp -d)"
  trap 'rm -rf "$ctx"' EXIT
  cp "$CATATONIT" "$ctx/pause"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause", "-P"]\n' >"$ctx/Containerfile"
  "$PODMAN" build --quiet --network none --tag "$REF" --file "$ctx/Containerfile" "$ctx" >/dev/null
fi
echo "$REF"
