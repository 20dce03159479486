# `make bench`: kubeq against RQ, Celery, arq and Dramatiq on one private Redis,
# Redis's own limits, and the autoscaler's reaction time on the local control plane.
#   make bench                 the full run (about 20 minutes on 2 cores)
#   make bench BENCH_QUICK=1   a few minutes: smaller sizes, one repetition, no cluster
#   make bench BENCH_ARGS='--only kubeq,rq --skip-autoscale'   see bench/run.py --help
# The peers live in venvs OUTSIDE the checkout, one per peer (their redis-py requirements
# conflict: arq wants <6, Celery's kombu >=6.1), keyed by the hash of their locked pins in
# bench/requirements/*.txt, so a changed pin gets a fresh venv and the project venv and
# `make test` never see them. Each peer's release is chosen in bench/requirements/<peer>.in;
# <peer>.txt is that compiled by uv, every package pinned with its hashes (`make lock`
# refreshes it, `make bench-lock` alone too), and installed exactly (uv pip sync).
BENCH_CACHE ?= $${XDG_CACHE_HOME:-$$HOME/.cache}/kubeq
BENCH_PEERS := rq celery arq dramatiq tools
BENCH_QUICK ?=
BENCH_ARGS ?=
BENCH_LOCK_ARGS ?= --upgrade
# PEER-VENV-DIR PEER: the venv of a peer, installed from its lock when missing
bench_venv = req=bench/requirements/$(2).txt; \
	  h=$$(sha256sum $$req | cut -c1-12); \
	  $(1)=$(BENCH_CACHE)/bench-$(2)-$$h; \
	  if [ ! -f $$$(1)/.installed ]; then \
	    echo "bench: installing $(2) into $$$(1)"; rm -rf $$$(1); \
	    $(PYTHON) -m venv $$$(1); \
	    sh hack/uv/uv.sh pip sync --quiet --require-hashes --python $$$(1)/bin/python $$req; \
	    touch $$$(1)/.installed; \
	  fi

.PHONY: bench bench-venvs bench-venv-kubeq bench-lock

bench-venvs: bench-venv-kubeq
	@set -e; for p in $(BENCH_PEERS); do \
	  $(call bench_venv,v,$$p); \
	done

# kubeq's own bench venv: the versions uv.lock pins for kubeq's dependencies and no extras
# (what the worker image holds; the project venv's test extras, such as the OpenTelemetry SDK
# that redis-py imports when it is installed, are not what a worker runs), keyed by the hash
# of uv.lock and pyproject.toml. kubeq itself is not installed into it: run.py puts this
# checkout's src/ (or a --variant) first on PYTHONPATH.
bench-venv-kubeq:
	@set -e; d=$(BENCH_CACHE)/bench-kubeq-$$(cat uv.lock pyproject.toml | sha256sum | cut -c1-12); \
	if [ ! -f $$d/.installed ]; then \
	  echo "bench: installing kubeq's dependencies (uv.lock, no extras) into $$d"; rm -rf $$d; \
	  PYTHON=$(PYTHON) sh hack/install-venv.sh $$d --no-install-project; \
	  touch $$d/.installed; \
	fi

bench-lock:
	@set -e; for p in $(BENCH_PEERS); do \
	  PYTHON=$(PYTHON) sh hack/uv/uv.sh pip compile --quiet --universal --python-version 3.11 \
	    --generate-hashes --custom-compile-command 'make lock' $(BENCH_LOCK_ARGS) \
	    bench/requirements/$$p.in -o bench/requirements/$$p.txt; \
	done

bench: venv redis-server bench-venvs
	$(PY) bench/run.py --venvs "$(BENCH_CACHE)" $(if $(BENCH_QUICK),--quick) $(BENCH_ARGS)
	$(MAKE) bench-cluster
	$(MAKE) bench-swarm
	$(PY) bench/chord/run_chord.py --venvs "$(BENCH_CACHE)" $(if $(BENCH_QUICK),--reps 1)

# ONE partitioned queue on a Redis Cluster of 1 vs 3 masters (real redis-server
# nodes on loopback), jobs/s and the per-master load split; bench/cluster_partitions.py.
.PHONY: bench-cluster
bench-cluster: venv redis-server
	$(PY) bench/cluster_partitions.py $(if $(BENCH_QUICK),--jobs 3000) \
	  --out bench/results/cluster-partitions-$$(date +%F)$(if $(BENCH_QUICK),-quick).json

# A chord of 100 in kubeq and in Celery on one private Redis (Redis reads and
# commands, first member's start to the callback); bench/chord/run_chord.py.
.PHONY: bench-chord
bench-chord: venv redis-server bench-venvs
	$(PY) bench/chord/run_chord.py --venvs "$(BENCH_CACHE)"

# kubeq's scaling policy against a model of KEDA + HPA on five traces, and Job mode against
# KEDA ScaledJob (seconds, no cluster); the tables and one PNG per trace land in
# bench/results/scaling/, bench/README.md and docs/scaling.md.
.PHONY: scaling-sim
scaling-sim: venv
	@set -e; $(call bench_venv,v,tools); \
	$(PY) bench/scaling_report.py --out bench/results/scaling --sweep --readme bench/README.md \
		--docs docs/scaling.md && \
	$$v/bin/python bench/scaling_plot.py bench/results/scaling

# real KEDA (operator + metrics server) built from the Go module proxy, cached in
# ~/.cache/kubeq/keda-<version>/bin (tens of minutes, once; never part of `make test`).
.PHONY: keda
keda:
	nice -n 19 env GOMAXPROCS=1 bash hack/keda/build.sh

# N = 10 .. 1,000 real kubeq workers (many per event loop; --sizes ...,10000 where
# the harness has the cores) on one redis-server and on a Redis Cluster of 3 masters, idle
# and busy: what they cost Redis (bench/swarm.py, about 15 minutes; BENCH_QUICK: 10 and 100 workers, a few minutes); then what one idle
# worker costs (bench/idle_cost.py, about 2 minutes). Both render their bench/README.md block.
SWARM_QUICK := --sizes 10,100 --idle 15 --busy 15 --out bench/results/swarm-$$(date +%F)-quick.json
.PHONY: bench-swarm
bench-swarm: venv redis-server
	$(PY) bench/swarm.py $(if $(BENCH_QUICK),$(SWARM_QUICK))
	$(PY) bench/idle_cost.py $(if $(BENCH_QUICK),--window 30 --latency 50)
