#!/usr/bin/env bash
# Installs the Debian packages a kubeq build or cluster needs, only those missing (what
# `make image` and `make cluster-up NODE=real` call; apt-get update runs only when needed).
#   hack/debs.sh PACKAGE...
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
command -v apt-get >/dev/null \
  || { echo "debs.sh: install the packages ${missing[*]} (Debian/Ubuntu names)" >&2; exit 1; }
[[ $(id -u) == 0 ]] || { echo "debs.sh: run as root to install ${missing[*]}" >&2; exit 1; }
echo "installing Debian's ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
