#!/bin/sh
# The one way kubeq gets installed into a virtualenv, used by `make` (editable, with the test
# extras) and by the Dockerfile (a regular install, operator extra only), so the image runs
# exactly what the tests ran.
#   hack/install-venv.sh VENV PIP-ARGS...
set -eu
venv=$1
shift
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --no-cache-dir --upgrade pip
"$venv/bin/python" -m pip install --quiet --no-cache-dir "$@"
