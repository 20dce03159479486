#!/usr/bin/env bash
# Builds the external judges that `make test` runs over the chart, the plain manifests and the
# worker Deployments the operator renders (tests/judges/):
#   psa-check   kubeq's small program on k8s.io/pod-security-admission (psa/, the API server's
#               own Pod Security Admission code, pinned to the control plane's release)
#   kube-score  pinned by kube-score/go.mod
#   promlint    client_golang's metrics linter (the one `promtool check metrics` runs), promlint/
#   checkov     from PyPI, in a virtualenv of its own (its pins clash with the project's)
# The Go modules are built through the Go module proxy (the control plane's build shares the
# ~/.cache/go-build cache). Everything lands outside the checkout, the Go programs keyed by the
# content of this folder (an edit rebuilds, an unchanged tree is a no-op), checkov by its
# version and the Python's (a link in the judges folder points at it):
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/judges-<key>/{bin,checkov}
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/checkov-<version>-py<X.Y>/
#
# Usage: hack/judges/build.sh          build what is missing
#        hack/judges/build.sh --dir    print the cache directory and exit
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CHECKOV_VERSION="3.3.30"
KUBE_SCORE_VERSION="v1.20.0"
PSA_VERSION="v0.35.4"
CLIENT_GOLANG_VERSION="v1.25.0"

key="$(cd "$HERE" && cat build.sh psa/go.mod psa/go.sum psa/main.go kube-score/go.mod kube-score/go.sum \
  promlint/go.mod promlint/go.sum promlint/main.go | sha256sum | cut -c1-12)"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq"
DIR="${CACHE}/judges-${key}"
PY="${PYTHON:-python3}"
CHECKOV_DIR="${CACHE}/checkov-${CHECKOV_VERSION}-py$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

case "${1:-}" in
  --dir) echo "$DIR"; exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--dir]" >&2; exit 2 ;;
esac

present() {
  [[ -x "$DIR/bin/psa-check" && -x "$DIR/bin/kube-score" && -x "$DIR/bin/promlint" \
    && -f "$DIR/checkov/.installed" ]]
}
if present; then
  echo "judges are up to date in ${DIR}"
  exit 0
fi

command -v go >/dev/null || { echo "hack/judges/build.sh: Go is required" >&2; exit 1; }
grep -q "k8s.io/pod-security-admission ${PSA_VERSION}" "$HERE/psa/go.mod" \
  || { echo "build.sh: psa/go.mod does not pin pod-security-admission ${PSA_VERSION}" >&2; exit 1; }
grep -q "github.com/zegl/kube-score ${KUBE_SCORE_VERSION}" "$HERE/kube-score/go.mod" \
  || { echo "build.sh: kube-score/go.mod does not pin ${KUBE_SCORE_VERSION}" >&2; exit 1; }
grep -q "github.com/prometheus/client_golang ${CLIENT_GOLANG_VERSION}" "$HERE/promlint/go.mod" \
  || { echo "build.sh: promlint/go.mod does not pin ${CLIENT_GOLANG_VERSION}" >&2; exit 1; }

mkdir -p "$DIR"
exec 9>"$DIR/.build.lock"
flock 9
if present; then echo "judges were built by another run"; exit 0; fi

export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
STAGE="$(mktemp -d "$DIR/.stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
t0=$SECONDS

install_checkov() {
  exec 8>"${CACHE}/.checkov.lock"
  flock 8
  [[ -f "$CHECKOV_DIR/.installed" ]] && return 0
  echo "==> installing checkov ${CHECKOV_VERSION} from PyPI (alongside the Go builds)"
  # a venv names its interpreter by path, so it is made in place; .installed marks it whole
  rm -rf "$CHECKOV_DIR"
  "$PY" -m venv "$CHECKOV_DIR"
  "$CHECKOV_DIR/bin/python" -m pip install --quiet --no-cache-dir "checkov==${CHECKOV_VERSION}"
  touch "$CHECKOV_DIR/.installed"
}
# pip mostly waits on downloads and unpacking while go compiles: run them side by side
install_checkov &
checkov_pid=$!

echo "==> building psa-check (k8s.io/pod-security-admission ${PSA_VERSION})"
(cd "$HERE/psa" && go build -trimpath -ldflags "-s -w" -o "$STAGE/psa-check" .)
echo "==> building kube-score ${KUBE_SCORE_VERSION}"
(cd "$HERE/kube-score" && go build -trimpath \
  -ldflags "-s -w -X main.version=${KUBE_SCORE_VERSION#v}" -o "$STAGE/" \
  github.com/zegl/kube-score/cmd/kube-score)
echo "==> building promlint (client_golang ${CLIENT_GOLANG_VERSION})"
(cd "$HERE/promlint" && go build -trimpath -ldflags "-s -w" -o "$STAGE/promlint" .)
mkdir -p "$DIR/bin"
mv -f "$STAGE/psa-check" "$STAGE/kube-score" "$STAGE/promlint" "$DIR/bin/"
wait "$checkov_pid" || { echo "build.sh: installing checkov failed" >&2; exit 1; }
ln -sfn "$CHECKOV_DIR" "$DIR/checkov"
echo "built the judges into ${DIR} in $((SECONDS - t0))s"
