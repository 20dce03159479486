# shellcheck shell=bash
# Long builds (the Go compile of Kubernetes, debootstrap, the image build) print what they build,
# the duration to expect up front and the elapsed time every 30 s, so a first run that takes
# many minutes never looks hung. Sourced by hack/cluster/build.sh and hack/image/*.sh.
#
#   with_progress LABEL EXPECTED LOG CMD...   run CMD with its output in LOG; on failure print
#                                             the log's tail and return CMD's exit status.
# EXPECTED is free text ("~7 min cold on 2 cores"). KUBEQ_PROGRESS_EVERY overrides the 30 s.

fmt_duration() { # seconds -> "4m05s"
  local s=$1
  if ((s >= 60)); then printf '%dm%02ds' $((s / 60)) $((s % 60)); else printf '%ds' "$s"; fi
}

with_progress() {
  local label=$1 expected=$2 log=$3
  shift 3
  local every=${KUBEQ_PROGRESS_EVERY:-30} t0=$SECONDS next rc=0 pid
  echo "==> ${label}: expected ${expected}; progress every ${every}s (log: ${log})"
  "$@" >"$log" 2>&1 &
  pid=$!
  next=$((t0 + every))
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS >= next)) && kill -0 "$pid" 2>/dev/null; then
      echo "    ... ${label}: $(fmt_duration $((SECONDS - t0))) elapsed, still working"
      next=$((next + every))
    fi
  done
  wait "$pid" || rc=$?
  if ((rc != 0)); then
    echo "!!! ${label} failed (exit ${rc}) after $(fmt_duration $((SECONDS - t0))); last lines of ${log}:" >&2
    tail -n 40 "$log" >&2
    return "$rc"
  fi
  echo "    ${label}: done in $(fmt_duration $((SECONDS - t0)))"
}
