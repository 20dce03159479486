"""The Redis key scheme: every key kubeq reads or writes is named here (those no single queue
owns in ``kubeq.store.sharedkeys``, re-exported here).

The worker, the client, the CLI and the operator all import this module, so they can never
disagree on where a queue's numbers live. Every key of one queue carries the same Redis
Cluster hash tag (``{name}``), so every Lua script touches a single slot and runs unchanged
on Redis Cluster.

Every key, its type and what it holds, for queue ``default`` under the default prefix
``kubeq``, is in docs/architecture.md ("Redis key scheme", the layout), kept true with this
module; each method of ``QueueKeys`` below says the same for its key.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from kubeq import defaults
from kubeq.store.sharedkeys import SCHEDULE_TAG as SCHEDULE_TAG
from kubeq.store.sharedkeys import WORKER_TAG as WORKER_TAG
from kubeq.store.sharedkeys import audit_key as audit_key
from kubeq.store.sharedkeys import pools_key as pools_key
from kubeq.store.sharedkeys import queues_key as queues_key
from kubeq.store.sharedkeys import schedule_key as schedule_key
from kubeq.store.sharedkeys import schedule_keys as schedule_keys
from kubeq.store.sharedkeys import worker_index_key as worker_index_key
from kubeq.store.sharedkeys import worker_info_key as worker_info_key

DEFAULT_PREFIX = defaults.PREFIX

PRIORITY_MIN = defaults.PRIORITY_MIN
"""Lowest priority. Jobs of a higher priority always leave the ready set first."""
PRIORITY_MAX = defaults.PRIORITY_MAX
"""Highest priority."""
PRIORITY_DEFAULT = defaults.PRIORITY
"""Priority of a job that names none: in the middle, so callers can go either way."""

PRIORITY_BAND = 10**13
"""Width of one priority band in a ready-set score (ms timestamps stay below 10**13 until 2286).

score = (PRIORITY_MAX - priority) * PRIORITY_BAND + ready_time_ms, so ZPOPMIN returns the
highest priority first and, within a priority, the job that has waited longest. Scores stay
below 2**53 and so are exact in Redis' doubles and in Lua.
"""

_QUEUE_NAME = re.compile(
    r"[A-Za-z0-9_.:-]{1,128}(@[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?"
    r"(~[A-Za-z0-9][A-Za-z0-9_.-]{0,63})?(#[0-9]{1,3})?"
)
"""A name, then ``@<pool>`` for the share of a worker pool (kubeq.client.pools), then
``~<version>`` for the jobs pinned to a worker version (kubeq.store.versions), then ``#<n>``
for partition n of a partitioned queue (kubeq.store.partitions)."""
PIN_SEP = "~"
"""Between a queue's name (and pool) and the worker version its pinned jobs run on."""


def pin_of(queue: str) -> str | None:
    """The version a queue's jobs are pinned to (None: not a pinned queue)."""
    base = queue.partition("#")[0]
    return base.split(PIN_SEP, 1)[1] if PIN_SEP in base else None


_JOB_ID = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


def validate_queue_name(name: str) -> str:
    """Return ``name`` if it can be a queue name, else raise ValueError naming the rule."""
    if not isinstance(name, str) or not _QUEUE_NAME.fullmatch(name):
        raise ValueError(
            f"invalid queue name {name!r}: use 1-128 characters of letters, digits, '_', '.', "
            "':' or '-' (braces would break the Redis Cluster hash tag)"
        )
    return name


def validate_job_id(job_id: str) -> str:
    """Return ``job_id`` if it can be a job id, else raise ValueError naming the rule."""
    if not isinstance(job_id, str) or not _JOB_ID.fullmatch(job_id):
        raise ValueError(
            f"invalid job_id {job_id!r}: use 1-200 characters of letters, digits, '_', '.', "
            "':' or '-'"
        )
    return job_id


def ready_score(priority: int, ready_ms: int) -> int:
    """The ready-set score of a job: see PRIORITY_BAND."""
    return (PRIORITY_MAX - priority) * PRIORITY_BAND + ready_ms


FAIR_BANDS = 10
"""A ready job with a fairness key is scored this many bands higher (lua/_fair.lua)."""


def split_ready_score(score: float) -> tuple[int, int]:
    """Inverse of ready_score: (priority, ready time in ms), for a keyed job's score too."""
    band, ready_ms = divmod(int(score), PRIORITY_BAND)
    return PRIORITY_MAX - band % FAIR_BANDS, ready_ms


WATCH_SECONDS = 60
"""How long a waiter's ``watch`` key lasts; a waiter sets it again before each blocking wait
(at most 5 s), so it outlives every wait by far."""


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue. Build with ``QueueKeys.of(name, prefix)``."""

    name: str
    prefix: str
    base: str
    """Common start of every key of this queue, hash tag included: ``kubeq:{default}:``."""

    @classmethod
    def of(cls, name: str, prefix: str = DEFAULT_PREFIX) -> QueueKeys:
        if cls is QueueKeys:  # immutable: one per (name, prefix), built once (the hot path)
            return _queue_keys(name, prefix)
        validate_queue_name(name)
        return cls(name=name, prefix=prefix, base=f"{prefix}:{{{name}}}:")

    @property
    def ready(self) -> str:
        """ZSET of waiting job ids; score from ready_score()."""
        return self.base + "ready"

    @property
    def delayed(self) -> str:
        """ZSET of job ids due later (delay, eta, retry backoff); score = due time in ms."""
        return self.base + "delayed"

    @property
    def active(self) -> str:
        """ZSET of leased job ids; score = lease deadline in ms (renewed by heartbeat)."""
        return self.base + "active"

    @property
    def dead(self) -> str:
        """ZSET of dead-lettered job ids; score = time of death in ms."""
        return self.base + "dead"

    @property
    def workers(self) -> str:
        """ZSET of worker ids consuming this queue; score = last heartbeat in ms."""
        return self.base + "workers"

    @property
    def busy(self) -> str:
        """HASH worker id -> jobs that worker holds now (0 = idle)."""
        return self.base + "busy"

    @property
    def paused(self) -> str:
        """String present while the queue is paused; workers fetch nothing from it."""
        return self.base + "paused"

    @property
    def wake(self) -> str:
        """LIST of wake-up tokens pushed on enqueue; idle workers block on it with BLPOP."""
        return self.base + "wake"

    @property
    def leases(self) -> str:
        """Counter that issues lease tokens (INCR in fetch.lua): a token is never reused, so a
        late outcome of an old delivery can never match a newer one, even of a reused job id."""
        return self.base + "leases"

    @property
    def rate_limit(self) -> str:
        """HASH n, ms, b: the queue-wide rate limit (``kubeq limit``, ``rateLimit``)."""
        return self.base + "ratelimit"

    @property
    def throttled(self) -> str:
        """String present, with a TTL, while a rate limit holds this queue's jobs back."""
        return self.base + "throttled"

    @property
    def expired(self) -> str:
        """Counter of jobs that expired before they started."""
        return self.base + "expired"

    @property
    def handoff(self) -> str:
        """ZSET of ended jobs whose callback is still to be enqueued; score = end time in ms
        (handoff.py)."""
        return self.base + "handoff"

    @property
    def handoff_aside(self) -> str:
        """HASH of hand-off entries no worker could read (an id that is not UTF-8, a job key
        of another type): raw entry -> why, kept for a person to look at (handoff.py)."""
        return self.base + "handoff:aside"

    @property
    def sweeping(self) -> str:
        """STR: the id of the worker that claimed the queue's hand-off sweep, with a TTL;
        while it lives, the queue's other workers do not sweep (worker/sweeps.py)."""
        return self.base + "sweeping"

    @property
    def retired(self) -> str:
        """HASH version -> ms: worker versions retired by a versioned rollout; their workers
        fetch nothing more and finish what they hold (store/versions.py)."""
        return self.base + "retired"

    @property
    def deferred(self) -> str:
        """ZSET of job ids waiting for their parents (depends_on); score = enqueue time."""
        return self.base + "deferred"

    @property
    def linking(self) -> str:
        """ZSET of deferred children whose edges are being registered (a worker redoes the
        link of one whose caller died); score = when the caller began, in ms."""
        return self.base + "linking"

    def links(self, job_id: str) -> str:
        """STR: JSON of a deferred child's parents while its edges are registered."""
        return f"{self.base}links:{job_id}"

    def dependents(self, job_id: str) -> str:
        """SET of "<queue>\t<id>" children waiting for this job to end (depend.lua)."""
        return f"{self.base}dependents:{job_id}"

    def slots(self, limit_key: str) -> str:
        """SET of running job ids holding a slot of a concurrency key (``k:<key>`` or
        ``t:<task>``); freed by every outcome and by an aborted attempt's end (a lapsed
        lease keeps it: the job takes it with it when delivered again)."""
        return f"{self.base}slots:{limit_key}"

    def waiting(self, limit_key: str) -> str:
        """ZSET of job ids waiting for a slot of a concurrency key; score = ready score."""
        return f"{self.base}waiting:{limit_key}"

    @property
    def sleeping(self) -> str:
        """ZSET of jobs in a durable sleep or wait (suspend.lua); score = when it wakes, in
        ms (9e15 for a wait without timeout; its timer is also in ``delayed``)."""
        return self.base + "sleeping"

    def waiters(self, signal_key: str) -> str:
        """ZSET of job ids waiting on a signal key (``kubeq.wait_for``); score = since when."""
        return f"{self.base}waiters:{signal_key}"

    def signal(self, signal_key: str) -> str:
        """STR: the payload of a signal sent with mode "all", kept for its TTL for jobs that
        wait on the key later (signal.lua); ``...:one`` is the LIST of mode "one" payloads
        no job waited for yet."""
        return f"{self.base}signal:{signal_key}"

    @property
    def fair(self) -> str:
        """ZSET of the fairness keys with ready jobs; score = band of the key's next job *
        10^13 + its virtual start tag (the fetch serves the least first)."""
        return self.base + "fair"

    def fair_queue(self, key: str) -> str:
        """ZSET of one fairness key's ready job ids; score = their ready score."""
        return f"{self.base}fair:q:{key}"

    @property
    def fair_idle(self) -> str:
        """ZSET key -> finish tag of keys that emptied, until the virtual clock passes it."""
        return self.base + "fair:idle"

    @property
    def fair_state(self) -> str:
        """HASH of the queue's virtual clock ``v`` and the unkeyed jobs' tag ``u``."""
        return self.base + "fair:state"

    @property
    def fair_weights(self) -> str:
        """HASH fairness key -> weight (``Queue.set_weights``, ``kubeq fair``, TaskQueue
        ``spec.fairness``); "" weighs the jobs without a key."""
        return self.base + "fair:weights"

    def flow(self, key: str) -> str:
        """STR: the id of the newest job of a debounce or singleton key (``<task>:<key>``),
        until that job ends (flow.lua; freed by note_end and purge.lua)."""
        return f"{self.base}flow:{key}"

    def batch(self, key: str) -> str:
        """STR: the open batch job of a batch task's key (``<task>:<key>``; batch.lua)."""
        return f"{self.base}batch:{key}"

    @property
    def flows(self) -> str:
        """ZSET of the debounce and singleton keys (``<task>:<key>``) that named a job lately
        (score: when); stats.lua counts the live ones and drops the others."""
        return self.base + "flows"

    @property
    def batches(self) -> str:
        """ZSET of the batch jobs opened lately (score: when); stats.lua counts the live
        ones (forming or closed) and their items, and drops the others."""
        return self.base + "batches"

    def items(self, batch_id: str) -> str:
        """LIST of a batch job's item ids, in the order they came (batch.lua)."""
        return f"{self.base}items:{batch_id}"

    def ix_task(self, task: str) -> str:
        """LIST of ``<enqueue ms>:<id>`` (or the bare id) of a task's jobs, oldest first (the
        search index, appended by enqueue.lua, read by ``kubeq.store.jobindex``: entries at the
        old end whose job record is gone are dropped when read, those older than 7 days on
        each write, the oldest past 2,000,000; the key expires 7 days after its last write)."""
        return f"{self.base}ix:task:{task}"

    def ix_tag(self, tag: str) -> str:
        """LIST of ``<enqueue ms>:<id>`` (or the bare id) of the jobs carrying a tag; kept as
        ``ix_task``."""
        return f"{self.base}ix:tag:{tag}"

    @property
    def ix_tasks(self) -> str:
        """ZSET of the task names with an index (``ix_task``); score = their last enqueue
        in ms (older than 7 days: dropped on a write; the key expires like the indexes)."""
        return self.base + "ix:tasks"

    def job(self, job_id: str) -> str:
        """HASH of one job's payload and state (and its step records, ``step:<name>``)."""
        return f"{self.base}job:{job_id}"

    def done(self, job_id: str) -> str:
        """LIST that receives one token when the job ends, if a caller watches it (``watch``);
        result() waits on it."""
        return f"{self.base}done:{job_id}"

    def watch(self, job_id: str) -> str:
        """STRING set (with a TTL of ``WATCH_SECONDS``) by a caller about to wait for the job's
        end, before it reads the status: the script that ends the job pushes its done-list
        only then, so a job nobody waits for leaves no done-list."""
        return f"{self.base}watch:{job_id}"

    @property
    def fence(self) -> str:
        """Never written; declared by every script call (see ``fence_of``)."""
        return self.base + "fence"

    @property
    def script_keys(self) -> list[str]:
        """The fixed keys every queue script receives, in the order the Lua scripts expect
        (a fresh list each time; the names are built once per queue)."""
        return list(self._script_keys)

    @functools.cached_property
    def _script_keys(self) -> tuple[str, ...]:
        return (
            self.ready,
            self.delayed,
            self.active,
            self.dead,
            self.workers,
            self.busy,
            self.paused,
            self.wake,
        )


@functools.lru_cache(maxsize=4096)
def _queue_keys(name: str, prefix: str) -> QueueKeys:
    validate_queue_name(name)  # raises: nothing cached for a bad name
    return QueueKeys(name=name, prefix=prefix, base=f"{prefix}:{{{name}}}:")


@functools.lru_cache(maxsize=4096)
def fence_of(key: str) -> str:
    """The fence key of the queue that ``key`` belongs to: ``<prefix>:{name}:fence``.

    Every script call declares it as its last KEY and no script touches it, so it never
    exists. On Redis Cluster a script call whose declared keys are not all present on one
    node while their slot migrates is answered ASK/TRYAGAIN instead of being run; a key that
    never exists makes that true for the whole migration, so a script never runs against a
    half-moved queue (where the job hashes it builds from ``base`` could be on the other
    node: an error half-way through on the source, a silent nil on the target). redis-py
    retries TRYAGAIN; callers see at worst a short stall of that one queue. On a single
    Redis the fence changes nothing.
    """
    close = key.find("}:")
    if not key.count("{") or close < 0:
        raise ValueError(f"{key!r} is not a kubeq queue key (no {{queue}} hash tag)")
    return key[: close + 2] + "fence"
