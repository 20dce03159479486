# kubeq — the two commands people need are `make demo` and `make test`.
# Each installs what it needs by itself: the virtualenv, Debian's redis-server and
# (through hack/cluster/cluster.mk) the locally built Kubernetes control plane.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: all venv lock redis-server chromium lint typecheck test test-banner test-range \
  test-range-lowest test-range-highest test-unit test-redis demo demo-local clean manifests

all: test

venv: $(VENV)/.installed

# Exactly the versions in uv.lock (hack/install-venv.sh); re-made whenever the lock changes.
$(VENV)/.installed: pyproject.toml uv.lock hack/install-venv.sh hack/uv/uv.sh hack/uv/requirements.txt
	PYTHON=$(PYTHON) sh hack/install-venv.sh $(VENV) operator test dashboard
	touch $@

# The one command that updates the pins (docs/decisions/lock-file.md): uv.lock to the newest
# versions pyproject.toml allows, and the bench peers' bench/requirements/*.txt from their
# *.in. LOCK_ARGS= keeps every pin that still fits and only adds what pyproject.toml changed;
# LOCK_ARGS='--upgrade-package redis' moves one package.
LOCK_ARGS ?= --upgrade
lock:
	PYTHON=$(PYTHON) sh hack/uv/uv.sh lock $(LOCK_ARGS)
	$(MAKE) --no-print-directory bench-lock BENCH_LOCK_ARGS='$(LOCK_ARGS)'

# Debian's redis-server; tests start their own instance on a free loopback port.
redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "installing Debian's redis-server"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null; \
	  service redis-server stop >/dev/null 2>&1 || true; }

# Debian's headless Chromium and its WebDriver, for the dashboard's browser tests (tests/dashboard).
chromium:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  echo "installing Debian's chromium and chromium-driver"; \
	  for try in 1 2 3 4 5 6; do \
	    apt-get -o DPkg::Lock::Timeout=120 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
	      --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null && break; \
	    echo "apt busy (another install?), retrying in 20 s"; sleep 20; \
	  done; command -v chromedriver >/dev/null; }

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the layers of docs/architecture.md ([tool.importlinter] in pyproject.toml)
	$(BIN)/hadolint Dockerfile

typecheck: venv
	$(BIN)/mypy src/kubeq src/kubeq_operator

include hack/cluster/cluster.mk
include hack/judges/judges.mk

# promtool, Prometheus's rule tester, for tests/chart/test_alert_rules.py: Debian's (seconds to
# install) in `make test`; `make promtool-bin` builds the current one from the Go module proxy
# instead (cached outside the checkout; a long build on 2 cores), used with PROMTOOL=path.
.PHONY: promtool promtool-bin
promtool:
	@command -v promtool >/dev/null || { \
	  echo "installing Debian's promtool (package prometheus)"; \
	  for try in 1 2 3 4 5 6; do \
	    apt-get -o DPkg::Lock::Timeout=120 update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
	      --no-install-recommends prometheus >/dev/null && break; \
	    echo "apt busy (another install?), retrying in 20 s"; sleep 20; \
	  done; command -v promtool >/dev/null; }
promtool-bin:
	bash hack/promtool/build.sh

# Toxiproxy for the fault-injection tier (tests/faults), built from the Go module proxy and
# cached outside the checkout (hack/toxiproxy/build.sh; a no-op once built).
.PHONY: toxiproxy-bin test-faults
toxiproxy-bin:
	bash hack/toxiproxy/build.sh

test-faults: venv redis-server toxiproxy-bin
	$(BIN)/pytest -m faults

# The kubeq image, built with podman from the Dockerfile; cached by content under
# ~/.cache/kubeq (a no-op of about a second when nothing changed). tests/node runs it, and the
# real node (node-deps: Debian's containerd, runc, CNI plugins; docs/real-node.md).
.PHONY: image
image:
	bash hack/image/build.sh

# What `make test` builds and how long it takes, printed before anything starts. The times
# are this project's 2-core machines: cold = nothing in ~/.cache/kubeq, the Go caches or .venv.
test-banner:
	@echo "make test builds the venv (exactly uv.lock), two venvs at the ends of the declared"
	@echo "dependency range (mypy, ruff, tests/unit and a redis slice in each), Debian's"
	@echo "redis-server, chromium and node packages, Kubernetes from source, the judges,"
	@echo "Toxiproxy and the kubeq image (podman), then runs every test tier with pytest."
	@echo "About 32 min warm (pytest in two lanes side by side), about 44 cold (builds in two lanes)."
	@if ls -d $${XDG_CACHE_HOME:-$$HOME/.cache}/kubeq/k8s-*/bin/kube-apiserver \
	  >/dev/null 2>&1; then echo "(builds found cached: expect the warm time)"; \
	else echo "(no cached builds found: expect the cold time)"; fi

# The range pyproject.toml declares, at both ends (hack/test-range.sh): the lowest versions
# it allows and the newest on PyPI, each in its own venv cached by content outside the
# checkout. About 2.5 min for both ends warm, 3.5 cold (nothing in uv's cache either).
test-range: test-range-lowest test-range-highest
test-range-lowest test-range-highest: redis-server
	PYTHON=$(PYTHON) bash hack/test-range.sh $(@:test-range-%=%)

# The builds run in two lanes at once: the Go builds (compiling: the cores) beside everything
# else (apt, debootstrap and the range venvs: mostly downloads and disk; apt's installs stay
# one at a time in that lane). Cold, the lanes overlap most of their time; warm both are no-ops.
TEST_BUILDS_GO := cluster-bin judges-bin toxiproxy-bin
TEST_BUILDS_HOST := venv redis-server chromium promtool node-deps image lint typecheck test-range
.PHONY: test-builds-go test-builds-host
test: test-banner
	$(MAKE) --no-print-directory -j2 test-builds-go test-builds-host
	bash hack/test-lanes.sh $(BIN)/pytest
test-builds-go:
	$(MAKE) --no-print-directory $(TEST_BUILDS_GO)
test-builds-host:
	$(MAKE) --no-print-directory $(TEST_BUILDS_HOST)

test-unit: venv
	$(BIN)/pytest -m "not redis and not cluster and not e2e and not faults and not node"

test-redis: venv redis-server
	$(BIN)/pytest -m "redis"

# The whole loop locally: control plane + node, Redis, the operator, a TaskQueue, a burst
# of jobs, and a live view of backlog, in-flight and desired/current workers. CLUSTER=real
# (real containers; the default where the machine can), agent (the node agent) or existing
# (your KUBECONFIG's cluster: kind, k3d, minikube); docs/real-node.md.
# (examples/00-local-cluster; DEMO_ARGS='--jobs 100 --keep' to change it)
demo: venv redis-server cluster-bin
	PYTHONPATH=$(CURDIR)/hack/cluster$${PYTHONPATH:+:$$PYTHONPATH} \
	  $(PY) examples/00-local-cluster/demo.py $(if $(CLUSTER),--cluster $(CLUSTER)) $(DEMO_ARGS)

# The library alone: a local Redis, two workers, a burst of jobs, `kubeq stats --watch`.
demo-local: venv redis-server
	$(PY) examples/01-quickstart/demo.py

manifests: cluster-bin
	sh hack/gen-manifests.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .demo

-include bench/bench.mk
