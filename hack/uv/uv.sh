#!/bin/sh
# uv at the version pinned in hack/uv/requirements.txt, installed on first use from PyPI with
# pip (hash-checked) into a virtualenv of its own outside the checkout, then run with the
# arguments given. Used by `make`, hack/install-venv.sh (and so the Dockerfile) and the
# range tier; nothing needs uv installed beforehand.
#   hack/uv/uv.sh ARGS...           e.g. hack/uv/uv.sh lock
# PYTHON (default python3) makes uv's own virtualenv; KUBEQ_UV_DIR overrides where it lives.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
req=$here/requirements.txt
version=$(sed -n 's/^uv==\([^ ]*\).*/\1/p' "$req")
dir=${KUBEQ_UV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/uv-$version}
if [ ! -f "$dir/.installed" ]; then
  echo "installing uv $version into $dir (once)" >&2
  mkdir -p "$(dirname "$dir")"
  tmp=$(mktemp -d "$dir.tmp.XXXXXX")
  "${PYTHON:-python3}" -m venv "$tmp"
  "$tmp/bin/python" -m pip install --quiet --no-cache-dir --disable-pip-version-check \
    --require-hashes --no-deps -r "$req"
  touch "$tmp/.installed"
  # the uv binary does not depend on where its venv lives: the rename makes the install
  # appear whole (a concurrent first use from another checkout loses the race harmlessly)
  [ -f "$dir/.installed" ] || rm -rf "$dir"
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
# the platform's certificate store, as pip (truststore) uses, not uv's bundled roots: it also
# holds a proxy's CA where a network needs one
export UV_SYSTEM_CERTS="${UV_SYSTEM_CERTS:-1}"
# never fetch a Python build from outside PyPI: use the interpreter given or found
export UV_PYTHON_DOWNLOADS="${UV_PYTHON_DOWNLOADS:-never}"
exec "$dir/bin/uv" "$@"
