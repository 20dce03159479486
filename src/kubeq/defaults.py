"""Every default kubeq has, in one place.

The CLI's options, the worker's settings, the task options, the retry policy, the operator's
TaskQueue parser and its dataclasses all read their defaults from here; the CRD repeats the
ones it carries as ``default:`` (an API server applies them before kubeq sees an object), and
``tests/unit/test_defaults.py`` fails when the CRD and this module disagree. Change a default
here, then in the CRD, and the test tells you if you forgot the second step.

A plain module of constants on purpose (rq keeps ``rq/defaults.py`` the same way): it imports
nothing, so the operator, the CLI and the worker can all read it without import cycles.
"""

from __future__ import annotations

# -- Redis -----------------------------------------------------------------------------------

REDIS_URL = "redis://localhost:6379/0"
"""Used when neither the caller nor KUBEQ_REDIS_URL gives one."""
PREFIX = "kubeq"
"""Key prefix shared by the application, the workers and the operator."""
ASYNC_MAX_CONNECTIONS = 100
"""Connections of one event loop's asyncio client; more concurrent calls wait for a free one
(a blocking pool) instead of failing with "Too many connections"."""
PASSWORD_SECRET_KEY = "password"
"""The key of the Kubernetes Secret (``spec.redis.secretRef``) that holds the password."""

WAIT_TIMEOUT = 5.0
"""Seconds an enqueue with ``wait_replicas`` waits for the replicas to confirm."""
RESEND_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2)
"""Seconds before each new send of an enqueue whose connection failed (halved to doubled by
jitter): one first send and up to seven more within about 6 s, enough to ride out a cut
connection, a proxy's reset or a Sentinel failover; then the error is the caller's."""

# -- jobs and tasks --------------------------------------------------------------------------

QUEUE = "default"
PARTITIONS = 1
"""Sub-queues of one queue (``partitions``; TaskQueue ``spec.partitions``): 1 = not
partitioned. More spread one hot queue over several Redis Cluster masters."""
PARTITIONS_MAX = 256
PRIORITY_MIN = 0
PRIORITY_MAX = 9
PRIORITY = 5
"""0 (lowest) to 9 (highest); higher runs first while jobs wait."""
RESULT_TTL = 86_400
"""Seconds a finished job and its result stay readable: one day, like Celery's default."""
MAX_DELIVERIES = 5
"""Deliveries without an acknowledgement (the worker died each time) before a job is
declared poison and dead-lettered."""
MAX_ATTEMPTS = 3
"""Executions in all, the first included; 1 means never retry."""
HANDOFF_GRACE_SECONDS = 10.0
"""A callback hand-off left unfinished this long (its worker died after the ack) is redone by
any worker of the queue, on its heartbeat."""
WORKFLOW_EDGES_KEPT = 100
"""Most parents, and most children, a job's hash lists for people (``kubeq job ID``,
``Job.edges()``); more are counted, not listed. The mechanism (depend.lua, resolve.lua, the
hand-off) has no such limit."""
MAX_PROGRESS_BYTES = 65_536
"""Largest progress value, and largest meta dict, a running task may store (each as JSON):
progress is for a summary the caller polls, not for data (return that as the result)."""

MAX_STEP_BYTES = 262_144
"""The largest JSON record of one durable step or signal payload (kubeq.step, app.signal):
store a reference (an object key, a row id) to anything larger."""
MAX_STEPS_BYTES = 2_097_152
"""The most the step records of one job may hold together (docs/durable.md)."""
SIGNAL_TTL_SECONDS = 7 * 86_400
"""How long a signal is kept for jobs that wait on its key after it was sent."""
BACKOFF_MIN = 1.0
"""Seconds before the first retry, and the floor of every later delay."""
BACKOFF_MAX = 300.0
"""Ceiling of any retry delay: a backoff never grows past five minutes."""
BACKOFF_FACTOR = 2.0
"""Each retry waits this many times longer than the one before, before jitter."""

RATE_BURST = 2
"""The smallest burst of a rate limit: starts allowed back to back before its even spacing
applies (10/s = one start every 100 ms). Any window of W seconds holds at most
rate * W + burst starts. A burst of 1 would let every late fetch push the schedule back."""
RATE_JITTER_MS = 50
"""A fast limit's burst covers this much of its rate (1000/s: 50 starts), so workers that
wake a few ms late still reach the full rate."""
RATE_UNITS = {"s": 1, "m": 60, "h": 3600}
"""The periods a rate limit may name: ``"10/s"``, ``"100/m"``, ``"1000/h"``."""
LIMIT_KEY_MAX = 200
"""The longest concurrency-limit key (it becomes part of a Redis key name)."""

# -- the worker ------------------------------------------------------------------------------

POOLS = ("thread", "process", "async")
"""Where sync tasks run: threads (default), a process pool (CPU-bound), or "async" (same as
thread for sync tasks; async tasks always run on the event loop)."""
POOL = "thread"
CONCURRENCY = 4
"""Jobs one worker process runs at once (and fetches, plus the prefetch below)."""
PREFETCH_MS = 50.0
"""A worker leases, beyond its free slots, as many jobs as its slots finish in this many
milliseconds at the measured run time (prefetch.py); 0 turns prefetching off."""
PREFETCH_MAX = 128
"""The most jobs a worker leases ahead of a free slot."""
LANE_AHEAD = 32
"""Sync jobs a worker hands its thread lane beyond its free slots: a thread that finishes a job
starts the next of these at once; further prefetched jobs wait in the worker (prefetch.py)."""
ACK_HOLD_MS = 10.0
"""While prefetched jobs keep its slots busy, a worker gathers the outcomes of the jobs that
end for at most this long before it sends them (and refills) in one round trip."""
LEASE_SECONDS = 30.0
"""A job whose worker stops renewing its lease for this long is delivered again."""
DRAIN_TIMEOUT = 25.0
"""Seconds running jobs get to finish after SIGTERM before they are handed back: below the
pod's default 30 s grace period, so the kubelet never has to SIGKILL a worker."""
HANDBACK_SECONDS = 3.0
"""Time allowed, after the drain, to record outcomes and hand-backs: the default drain plus
this stays below Kubernetes' 30 s default grace period."""
STALL_SECONDS = 60.0
"""/healthz fails when the loop has not completed a round trip to Redis for this long."""
WORKER_TTL_MS = 15_000
"""A worker whose last heartbeat is older than this is not counted as live (it beats every
couple of seconds, so this tolerates several missed beats)."""
LOG_LEVEL = "INFO"

# -- the TaskQueue (operator) ----------------------------------------------------------------

TERMINATION_GRACE_SECONDS = 30
"""The worker pods' terminationGracePeriodSeconds (Kubernetes' own default)."""
DRAIN_MARGIN_SECONDS = 5
"""The worker's --drain-timeout is the pod's grace period minus this (at least 1 s)."""
WORKER_METRICS_PORT = 9090
"""Port of a worker pod's /metrics and /healthz, which its liveness and readiness probes use;
``spec.worker.metricsPort: 0`` turns the endpoint and the probes off."""
WORKER_CPU_REQUEST = "100m"
"""CPU request of a worker container that names none; no CPU limit by default (throttling a
task helps nobody; the request is what the scheduler needs)."""
WORKER_MEMORY_REQUEST = "256Mi"
"""Memory request of a worker container that names no memory request or limit."""
WORKER_MEMORY_LIMIT = "1Gi"
"""Memory limit of a worker container that names no memory request or limit (with only a
request, the limit is that request)."""
WORKER_UID = 10001
"""User and group id of the kubeq image's ``kubeq`` user (the Dockerfile's useradd)."""
WORKER_TMP_SIZE_LIMIT = "1Gi"
"""Size limit of the emptyDir at /tmp that a worker's read-only root filesystem needs."""
MIN_TERMINATION_GRACE_SECONDS = DRAIN_MARGIN_SECONDS + 1
"""The shortest grace period a TaskQueue accepts: 1 s of drain, then the margin for the
hand-back (HANDBACK_SECONDS) before the kubelet's SIGKILL. The CRD's minimum says the same."""
MIN_REPLICAS = 0
MAX_REPLICAS = 10
ACTIVATION_BACKLOG = 1
"""Jobs waiting before a queue at zero workers gets its first one."""
POLL_SECONDS = 1.0
"""How often the operator reads the queues' numbers."""
IDLE_SECONDS_BEFORE_ZERO = 120
"""Seconds with nothing waiting or running before the last worker goes."""
STABILIZATION_SECONDS = 15
"""Scale-down window: the largest recent recommendation wins (like the HPA's). About one pod
start-up: an idle pod is kept about as long as replacing it would cost, no longer. Longer
windows were what made kubeq cost more than tuned KEDA after bursts (60 s: idle pods held a
minute after every burst); shorter ones flap on steady Poisson load (bench/README.md)."""
MAX_PODS_PER_STEP = 10
"""Scale-down rate: at most this many pods removed per period. Scale-down removes idle pods
first and never asks a busy worker to go, so the rate only spreads a large drop over a few
polls; the window above is what guards against flapping."""
PERIOD_SECONDS = 1
"""The period of the scale-down rate: one poll (``POLL_SECONDS``)."""
SCALE_UP_PERIOD_SECONDS = 15
"""The period of the scale-up rate, when ``scaleUp.maxPodsPerStep`` limits it (the HPA's)."""
DRAIN_RATE_HALF_LIFE_SECONDS = 30.0
"""Half-life of the smoothed drain rate per worker that ``targetWaitSeconds`` sizes with."""

# -- the dashboard (kubeq dashboard) --------------------------------------------------------

DASHBOARD_HOST = "127.0.0.1"
"""Loopback by default: reach it with `kubectl port-forward`, or pass --host 0.0.0.0."""
DASHBOARD_PORT = 8080
DASHBOARD_POLL_SECONDS = 1.0
"""One shared Redis poll this often while any page is open, fanned out to every viewer."""
DASHBOARD_HISTORY_SECONDS = 600
"""How far back the overview's small charts and the Scaling page's series reach."""
DASHBOARD_PAGE_SIZE = 50
"""Jobs per page on the Queue and Dead letters pages."""
DASHBOARD_QUEUES_PAGE = 50
"""Queues per overview page: the poll reads, and the page embeds history for, these only."""
DASHBOARD_HISTORY_QUEUES = 200
"""Queues whose chart history the dashboard keeps (the most recently shown)."""
DASHBOARD_RECHECK_SECONDS = 60.0
"""How long a registered name found holding nothing stays off the overview before its keys
are looked at again."""
DASHBOARD_LOGIN_FAILURES = 5
"""Failed logins one client may make per DASHBOARD_LOGIN_WINDOW before it gets 429."""
DASHBOARD_LOGIN_WINDOW = 60.0
DASHBOARD_SCAN_LIMIT = 5_000
"""Dead letters examined per page when a filter is set (a filter never reads a whole queue)."""
DASHBOARD_RESULT_CHARS = 4_000
"""Characters of a result or argument shown inline; the rest is behind a download link."""

# Fair queues (docs/fairness.md)
FAIR_WEIGHT_MIN = 0.001
FAIR_WEIGHT_MAX = 1000.0
FAIR_TOP = 10
"""Keys `kubeq stats --by-key` and the metrics show (the oldest waits)."""
FAIR_SCAN = 1000
"""Keys with ready jobs one by-key read looks at at most (in the order they will be served)."""

WORKER_POOLS_CACHE_SECONDS = 5.0
"""How long an App trusts the worker pools it read from Redis (kubeq.client.pools): a pool
added to a TaskQueue is routed to within this long."""
