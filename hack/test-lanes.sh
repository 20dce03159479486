#!/usr/bin/env bash
# Every test tier in two pytest processes side by side. The first lane runs the tests of the
# local Kubernetes cluster (marked control_plane by tests/conftest.py: one cluster and one
# operator fixture per session), the fault tier (its own Toxiproxy per session), the model
# tier and two files of the redis tier (marked cluster_lane: they need no cluster, and even
# the lanes out; tests/conftest.py names them); the other runs everything else, the
# real-node tier (tests/node, marked node: its own control plane with a real kubelet, in
# .cluster-real/) included, so that neither lane waits long on the other (22:40 and 31:43
# side by side on 2 cores on 2026-12-07 before the model tier moved, 27:48 and 30:14 after).
# Most of the first lane's tests wait on the API server, the operator's passes and injected
# faults, and the real node's on image pulls and pod starts, so each lane's CPU work fits
# beside the other's. The first lane's output is kept in a file and printed when both have
# ended; the other lane prints as it goes. Exit status: the first failing lane's (the other
# lane's first).
# Usage: hack/test-lanes.sh PYTEST [pytest args...]
set -uo pipefail
pytest=("$@")
work=$(mktemp -d "${TMPDIR:-/tmp}/kubeq-lanes.XXXXXX")
trap 'kill 0 2>/dev/null; exit 130' INT TERM

"${pytest[@]}" -m "(control_plane or faults or cluster_lane) and not node" --basetemp="$work/control-plane" -p no:cacheprovider \
  >"$work/control-plane.log" 2>&1 &
cp_pid=$!
echo "==> the control-plane and fault lane runs in the background (its output follows this one's)"
"${pytest[@]}" -m "node or not (control_plane or faults or cluster_lane)" --basetemp="$work/rest"
rest=$?
wait "$cp_pid"
cp=$?
echo
echo "==> the control-plane and fault lane (pytest -m '(control_plane or faults or cluster_lane) and not node'):"
cat "$work/control-plane.log"
echo
echo "==> lanes: control plane and faults exit $cp, the rest exit $rest"
rm -rf "$work"
if [ "$rest" -ne 0 ]; then exit "$rest"; fi
exit "$cp"
