#!/usr/bin/env bash
# Builds the local Kubernetes control plane used by `make cluster-up` and the cluster tests:
# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, helm and kubeconform,
# and the real node's kubelet and kube-proxy (hack/cluster/localcluster/realnode.py),
# all from source through the Go module proxy (no prebuilt release downloads needed).
#
# Each tool is pinned by a committed go.mod/go.sum in its own module folder next to this
# script (k8s/, etcd/, helm/, kubeconform/), so builds are reproducible. Binaries land in a
# cache outside the checkout, keyed by the Kubernetes version:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/k8s-<version>/bin
# When every binary is already there the script does nothing.
#
# Usage: hack/cluster/build.sh            build what is missing
#        hack/cluster/build.sh --bin-dir  print the binary directory and exit
#        hack/cluster/build.sh --force    rebuild everything
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../progress.sh
source "$HERE/../progress.sh"

# The pinned release. Keep in sync with k8s/go.mod (checked below) and localcluster/_paths.py.
K8S_VERSION="v1.35.4"
K8S_COMMIT="7b8c6cf0edd376b3d7c2f255142977c7f93db258" # Origin.Hash of k8s.io/kubernetes@v1.35.4
ETCD_VERSION="v3.6.5"                                 # what k8s.io/kubernetes@v1.35.4 requires
ETCD_COMMIT="a0614505aff9b8ff469e9c59c2d979a5936d13f4"
HELM_VERSION="v3.20.2"
HELM_COMMIT="8fb76d6ab555577e98e23b7500009537a471feee"
KUBECONFORM_VERSION="v0.7.0"

BIN_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kubeq/k8s-${K8S_VERSION}/bin"
BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy helm kubeconform)

force=0
case "${1:-}" in
  --bin-dir) echo "$BIN_DIR"; exit 0 ;;
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--bin-dir|--force]" >&2; exit 2 ;;
esac

all_present() {
  local b
  for b in "${BINARIES[@]}"; do [[ -x "$BIN_DIR/$b" ]] || return 1; done
}

if [[ $force == 0 ]] && all_present; then
  echo "control-plane binaries for Kubernetes ${K8S_VERSION} are up to date in ${BIN_DIR}"
  exit 0
fi

command -v go >/dev/null || { echo "build.sh: Go is required (https://go.dev/dl/)" >&2; exit 1; }
grep -q "k8s.io/kubernetes ${K8S_VERSION}" "$HERE/k8s/go.mod" \
  || { echo "build.sh: k8s/go.mod does not pin k8s.io/kubernetes ${K8S_VERSION}" >&2; exit 1; }
grep -q "go.etcd.io/etcd/server/v3 ${ETCD_VERSION}" "$HERE/etcd/go.mod" \
  || { echo "build.sh: etcd/go.mod does not pin etcd ${ETCD_VERSION}" >&2; exit 1; }

mkdir -p "$BIN_DIR"
# One build at a time per cache (make test and a test session may race).
exec 9>"$BIN_DIR/.build.lock"
if ! flock -n 9; then
  echo "another build.sh is running (it prints its own progress); waiting for it"
  waited=$SECONDS
  until flock -w 30 9; do echo "    ... still waiting for the other build: $(fmt_duration $((SECONDS - waited)))"; done
  if [[ $force == 0 ]] && all_present; then echo "binaries were built by the other run"; exit 0; fi
fi

# -buildvcs=false: the throwaway modules sit inside the kubeq checkout; stamping its git state
# is pointless and fails in CI containers where git refuses the checkout ("dubious ownership").
export CGO_ENABLED=0 GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly -buildvcs=false"
STAGE="$(mktemp -d "$BIN_DIR/.stage.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

start_all=$SECONDS
step() { # step <label> <expected> <module-dir> <go build args...>
  local label=$1 expected=$2 dir=$3; shift 3
  with_progress "building ${label} (module hack/cluster/${dir})" "${expected}" \
    "$STAGE/build-${dir}.log" bash -c 'cd "$1" && shift && go build -trimpath "$@"' _ "$HERE/$dir" "$@"
}
echo "Building the local Kubernetes ${K8S_VERSION} from source: about 8-10 min on an idle 2-core"
echo "machine with empty Go caches, up to 3x that on a busy one; ~20 s to relink with a warm"
echo "Go build cache. Later runs reuse ${BIN_DIR} and take no time."

major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
k8s_ld="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ld+=" -X ${pkg}.gitVersion=${K8S_VERSION} -X ${pkg}.gitMajor=${major}"
  k8s_ld+=" -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitCommit=${K8S_COMMIT}"
  k8s_ld+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
done

# The etcd server's main package is the module root (go.etcd.io/etcd/server/v3), whose
# default binary name would be "server", hence its own -o.
step "etcd ${ETCD_VERSION}" "~1 min cold" etcd -ldflags "-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=${ETCD_COMMIT:0:9}" \
  -o "$STAGE/etcd" go.etcd.io/etcd/server/v3
# One invocation for the six Kubernetes commands so shared packages compile once.
step "kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kubelet, kube-proxy ${K8S_VERSION}" \
  "~6-7 min cold" k8s -ldflags "$k8s_ld" -o "$STAGE/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
helm_ld="-s -w -X helm.sh/helm/v3/internal/version.version=${HELM_VERSION}"
helm_ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
helm_ld+=" -X helm.sh/helm/v3/internal/version.gitCommit=${HELM_COMMIT}"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ld+=" -X ${pkg}.k8sVersionMajor=${major} -X ${pkg}.k8sVersionMinor=${minor}"
done
step "helm ${HELM_VERSION}" "~1 min cold" helm -ldflags "$helm_ld" -o "$STAGE/" helm.sh/helm/v3/cmd/helm
step "kubeconform ${KUBECONFORM_VERSION}" "seconds" kubeconform \
  -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" -o "$STAGE/" \
  github.com/yannh/kubeconform/cmd/kubeconform

for b in "${BINARIES[@]}"; do
  [[ -x "$STAGE/$b" ]] || { echo "build.sh: $b was not produced" >&2; exit 1; }
  mv -f "$STAGE/$b" "$BIN_DIR/$b"
done
echo "built ${BINARIES[*]} into ${BIN_DIR} in $((SECONDS - start_all))s"
"$BIN_DIR/kubectl" version --client 2>/dev/null | head -1 || true
