#!/usr/bin/env bash
# Build KEDA's operator and metrics server (the "adapter") from the Go module proxy, for the
# side-by-side autoscaling measurement of issue 16 (bench/README.md, "Real KEDA"). Not part of
# `make test`: it takes tens of minutes on a small machine. The result is cached outside the
# checkout, keyed by KEDA's version: ~/.cache/kubeq/keda-<version>/bin/{keda,keda-adapter}.
#
# KEDA's own go.mod carries `replace` directives, so `go install ...@version` refuses it; the
# build therefore goes through a scratch module that requires KEDA as a tool dependency
# (`go get -tool`), then `go build`s its two commands. Everything comes from the module proxy.
#
# Environment: KEDA_VERSION (default below), KUBEQ_CACHE (default ~/.cache/kubeq),
# GOMAXPROCS / nice level are the caller's (`make keda` runs it at nice 19, GOMAXPROCS=1).
set -euo pipefail

KEDA_VERSION="${KEDA_VERSION:-v2.21.0}"
CACHE="${KUBEQ_CACHE:-$HOME/.cache/kubeq}"
OUT="$CACHE/keda-$KEDA_VERSION"
MOD="$OUT/mod"
BIN="$OUT/bin"

if [[ -x "$BIN/keda" && -x "$BIN/keda-adapter" ]]; then
    echo "keda $KEDA_VERSION already built: $BIN"
    exit 0
fi
command -v go >/dev/null || { echo "build.sh: go is not on PATH (install Go >= 1.26)" >&2; exit 1; }

mkdir -p "$MOD" "$BIN"
cd "$MOD"
if [[ ! -f go.mod ]]; then
    go mod init kubeq.local/keda-build >/dev/null
fi
PKG=github.com/kedacore/keda/v2
go get -tool "$PKG/cmd/operator@$KEDA_VERSION" "$PKG/cmd/adapter@$KEDA_VERSION"

build() { # $1 = command package, $2 = output name
    local start=$SECONDS
    echo "building $1 -> $BIN/$2 ($(date -u +%H:%M:%S))"
    go build -p "${GOMAXPROCS:-1}" -ldflags "-s -w" -o "$BIN/$2.tmp" "$1"
    mv "$BIN/$2.tmp" "$BIN/$2"
    echo "built $2 in $((SECONDS - start)) s"
}
build "$PKG/cmd/operator" keda
build "$PKG/cmd/adapter" keda-adapter
echo "$KEDA_VERSION" >"$OUT/VERSION"
