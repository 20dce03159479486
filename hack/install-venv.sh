#!/bin/sh
# The one way kubeq gets installed into a virtualenv, used by `make venv` (editable, with the
# test extras) and by the Dockerfile (a regular install, no test extras), so the image runs
# exactly what the tests ran: the versions pinned in uv.lock, hash-checked, and nothing else
# (a package the lock no longer lists is removed). uv.lock must match pyproject.toml: after
# changing the dependencies there, `make lock` (docs/decisions/lock-file.md).
#   hack/install-venv.sh VENV [--no-editable] EXTRA...
# The virtualenv is made with PYTHON (default python3) and keeps the pip it comes with, so
# `VENV/bin/pip install` still adds a package to it (docs/worker-image.md).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
venv=$1
shift
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
venv=$(cd "$venv" && pwd)
cd "$here/.."
args=""
for a in "$@"; do
  case $a in
    --*) args="$args $a" ;;
    *) args="$args --extra $a" ;;
  esac
done
echo "installing the versions in uv.lock into $venv"
# --locked: fail, rather than re-resolve, when uv.lock does not match pyproject.toml
# shellcheck disable=SC2086 # $args is a list of words
UV_PROJECT_ENVIRONMENT=$venv sh "$here/uv/uv.sh" sync --locked --quiet \
  --python "$venv/bin/python" $args || {
  if ! sh "$here/uv/uv.sh" lock --check --quiet 2>/dev/null; then
    echo "hack/install-venv.sh: uv.lock does not match pyproject.toml: run \`make lock\`" >&2
  fi
  exit 1
}
