#!/usr/bin/env bash
# The dependency range pyproject.toml declares, tested at both ends (issue 26): kubeq is
# installed next to other people's redis-py, kopf and kubernetes client, so it must work with
# the oldest release each `>=` allows and with the newest one out today, not only with the
# versions uv.lock pins for our own builds.
#   hack/test-range.sh lowest    every direct dependency at the lowest version allowed
#                                (uv's --resolution lowest-direct; theirs at their newest)
#   hack/test-range.sh highest   everything at the newest version on PyPI (no lock)
# For each: a virtualenv outside the checkout (${XDG_CACHE_HOME:-~/.cache}/kubeq/
# range-<tier>-<hash of the resolved versions, pyproject.toml, the interpreter and this
# checkout>), kubeq installed in it editable, then: each direct dependency at its declared
# floor (lowest tier), mypy on the package, ruff, the unit tier (tests/unit) and a slice of
# the redis tier (REDIS_SLICE below), all with those versions. A failure at the lowest end
# means a floor to raise in pyproject.toml; at the newest end, code to fix (never an upper
# bound to add).
# Run by `make test` through `make test-range`: both tiers take about 2.5 min warm, 3.5 cold
# (measured on 2 cores with nothing in uv's cache nor ~/.cache/kubeq).
set -euo pipefail
tier=${1:?usage: hack/test-range.sh lowest|highest}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON=${PYTHON:-python3}
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq"
UV=(sh "$ROOT/hack/uv/uv.sh")
EXTRAS=(operator dashboard otel test)
# enqueue (sync and async API, bulk), fetch/ack and the lease, retries and dead letters, the
# asyncio client; the Sentinel URL parsing is tests/unit/test_sentinel_urls.py
REDIS_SLICE=(
  tests/redis/test_client.py
  tests/redis/test_async_client.py
  tests/redis/test_prefetch.py::test_short_jobs_are_leased_ahead_and_each_runs_once
  tests/redis/test_reliability.py
  tests/redis/test_direct_write.py
  -k "not stats_in_one_round_trip and (test_client or test_async_client or test_prefetch or retry or dead_letters or sigkill_mid_job or test_direct_write)"
)

case $tier in
  lowest) resolution=lowest-direct ;;
  highest) resolution=highest ;;
  *) echo "test-range.sh: the tier is lowest or highest (got '$tier')" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
extra_args=()
for e in "${EXTRAS[@]}"; do extra_args+=(--extra "$e"); done
# --refresh: a release out since the last run counts at once (the index, not the wheels)
"${UV[@]}" pip compile --quiet --no-header --no-annotate --refresh --python "$PYTHON" \
  --resolution "$resolution" "${extra_args[@]}" pyproject.toml -o "$work/requirements.txt"

key=$({
  cat "$work/requirements.txt" pyproject.toml
  "$PYTHON" -c 'import sys; print(sys.version)'
  echo "$ROOT"
} | sha256sum | cut -c1-12)
venv="$CACHE/range-$tier-$key"
if [[ ! -f $venv/.installed ]]; then
  echo "range ($tier): installing into $venv"
  rm -rf "$venv"
  mkdir -p "$CACHE"
  "$PYTHON" -m venv --without-pip "$venv"
  "${UV[@]}" pip sync --quiet --python "$venv/bin/python" "$work/requirements.txt"
  "${UV[@]}" pip install --quiet --python "$venv/bin/python" --no-deps --editable .
  touch "$venv/.installed"
fi
touch "$venv/.used"
# venvs of earlier resolutions and of removed checkouts, unused for a week
find "$CACHE" -maxdepth 2 -path "$CACHE/range-*/.used" -mtime +7 -printf '%h\0' \
  | xargs -0r rm -rf

# the versions this tier runs: every direct dependency of kubeq and its extras. At the lowest
# end each must run at its declared floor, else the floor is a promise no test keeps (another
# dependency forces more: raise the floor to what is tested).
floors() {
  "$venv/bin/python" - "$tier" <<'EOF'
import sys, tomllib
from importlib.metadata import version
from packaging.requirements import Requirement
from packaging.version import Version

tier = sys.argv[1]
with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
reqs = [Requirement(r) for r in project["dependencies"]]
reqs += [Requirement(r) for extra in project["optional-dependencies"].values() for r in extra]
seen, bad = {}, []
for req in reqs:
    seen[req.name] = installed = version(req.name)
    floor = max((Version(s.version) for s in req.specifier if s.operator == ">="), default=None)
    if tier == "lowest" and floor is not None and Version(installed) != floor:
        bad.append(f"{req.name}>={floor} runs at {installed} here")
print(f"range ({tier}): " + " ".join(f"{n}=={v}" for n, v in sorted(seen.items())))
for line in bad:
    print(f"range ({tier}): {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
EOF
}

export PATH="$venv/bin:$PATH"
status=0
step() { # run one check, report it, keep going so one run shows every failure
  local name=$1
  shift
  if "$@"; then echo "range ($tier): $name ok"; else
    status=1
    echo "range ($tier): $name FAILED" >&2
  fi
}
step "the declared floors" floors
step mypy "$venv/bin/mypy" --cache-dir "$venv/.mypy_cache" -p kubeq -p kubeq_operator
step "ruff check" "$venv/bin/ruff" check --no-cache .
step "ruff format" "$venv/bin/ruff" format --no-cache --check .
step "unit tier" "$venv/bin/python" -m pytest -q -p no:cacheprovider tests/unit
step "redis slice" "$venv/bin/python" -m pytest -q -p no:cacheprovider "${REDIS_SLICE[@]}"
exit $status
