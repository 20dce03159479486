#!/usr/bin/env bash
# podman as kubeq uses it: the settings of containers.conf beside this script (runc, cgroupfs,
# file events, host-grantable ulimits) and a private image store under the kubeq cache, so the
# built images outlive a checkout and never mix with the machine's own podman images.
#   hack/image/podman.sh ARGS...      (any podman command)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq"
export CONTAINERS_CONF="$HERE/containers.conf"
exec podman --root "$CACHE/containers/storage" --runroot /run/kubeq-containers \
  --storage-driver overlay "$@"
