#!/usr/bin/env bash
# Builds Toxiproxy (server and CLI) for the fault-injection test tier (tests/faults) from source
# through the Go module proxy: no prebuilt release download is needed.
#
# The version is pinned by the committed go.mod/go.sum next to this script (tools.go names the
# two commands so `go mod tidy` keeps them). Binaries land in a cache outside the checkout,
# keyed by the Toxiproxy version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/toxiproxy-<version>/bin/{toxiproxy-server,toxiproxy-cli}
# When both binaries are already there the script does nothing.
#
# Usage: hack/toxiproxy/build.sh            build what is missing
#        hack/toxiproxy/build.sh --bin-dir  print the binary directory and exit
#        hack/toxiproxy/build.sh --force    rebuild
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Keep in sync with go.mod (checked below) and tests/faults/toxiproxy.py.
TOXIPROXY_VERSION="v2.12.0"
MODULE="github.com/Shopify/toxiproxy/v2"

BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/toxiproxy-${TOXIPROXY_VERSION}/bin"

force=0
case "${1:-}" in
  --bin-dir) echo "$BIN_DIR"; exit 0 ;;
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--bin-dir|--force]" >&2; exit 2 ;;
esac

all_present() { [[ -x "$BIN_DIR/toxiproxy-server" && -x "$BIN_DIR/toxiproxy-cli" ]]; }

if [[ $force == 0 ]] && all_present; then
  echo "toxiproxy ${TOXIPROXY_VERSION} is up to date in ${BIN_DIR}"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required to build toxiproxy" >&2; exit 1; }
grep -q "${MODULE} ${TOXIPROXY_VERSION}" "$HERE/go.mod" \
  || { echo "build.sh: go.mod does not pin ${MODULE} ${TOXIPROXY_VERSION}" >&2; exit 1; }

mkdir -p "$BIN_DIR"
# One build at a time per cache (make test and a test session may race).
exec 9>"$BIN_DIR/.build.lock"
if ! flock -n 9; then
  echo "another toxiproxy build is running; waiting for it"
  flock 9
  if [[ $force == 0 ]] && all_present; then echo "toxiproxy was built by the other run"; exit 0; fi
fi

# -buildvcs=false: the module sits inside the kubeq checkout; its git state is not toxiproxy's.
export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
STAGE="$(mktemp -d "$BIN_DIR/.stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

t0=$SECONDS
echo "==> building toxiproxy ${TOXIPROXY_VERSION} (module hack/toxiproxy)"
ld="-s -w -X ${MODULE}.Version=${TOXIPROXY_VERSION#v}"
(cd "$HERE" && go build -trimpath -ldflags "$ld" -o "$STAGE/toxiproxy-server" "${MODULE}/cmd/server")
(cd "$HERE" && go build -trimpath -ldflags "$ld" -o "$STAGE/toxiproxy-cli" "${MODULE}/cmd/cli")
mv -f "$STAGE/toxiproxy-server" "$STAGE/toxiproxy-cli" "$BIN_DIR/"
echo "built toxiproxy-server and toxiproxy-cli into ${BIN_DIR} in $((SECONDS - t0))s"
"$BIN_DIR/toxiproxy-server" --version 2>/dev/null | head -1 || true
