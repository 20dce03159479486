#!/usr/bin/env bash
# Builds promtool, Prometheus's own rule tester (`promtool test rules`), through the Go module
# proxy, into a cache outside the checkout keyed by its version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/promtool-<version>/promtool
# tests/chart/test_alert_rules.py runs it over the chart's PrometheusRule.
#
# Usage: hack/promtool/build.sh          build it if missing
#        hack/promtool/build.sh --path   print the binary's path and exit
set -euo pipefail

VERSION="v0.316.0" # the Go module version of Prometheus 3.16.0 (vX.Y.Z is v0.X0Y.Z)
DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/promtool-${VERSION}"

case "${1:-}" in
  --path) echo "$DIR/promtool"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--path]" >&2; exit 2 ;;
esac
[[ -x "$DIR/promtool" ]] && { echo "promtool is up to date in ${DIR}"; exit 0; }
command -v go >/dev/null || { echo "hack/promtool/build.sh: Go is required" >&2; exit 1; }
mkdir -p "$DIR"
exec 9>"$DIR/.build.lock"
flock 9
[[ -x "$DIR/promtool" ]] && exit 0
export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:-} -buildvcs=false"
STAGE="$(mktemp -d "$DIR/.stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
echo "==> building promtool ${VERSION} from the Go module proxy"
GOBIN="$STAGE" go install -trimpath -ldflags "-s -w" \
  "github.com/prometheus/prometheus/cmd/promtool@${VERSION}"
mv -f "$STAGE/promtool" "$DIR/promtool"
echo "built ${DIR}/promtool"
