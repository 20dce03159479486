"""The Redis key scheme: every key kubeq reads or writes is named here, and only here.

The worker, the client, the CLI and the operator all import this module, so they can never
disagree on where a queue's numbers live. Every key of one queue carries the same Redis
Cluster hash tag (``{name}``), so every Lua script touches a single slot and runs unchanged
on Redis Cluster.

Layout for queue ``default`` under the default prefix ``kubeq``::

    kubeq:queues                  SET   names of every queue ever used (for `kubeq stats`)
    kubeq:{default}:ready         ZSET  job ids waiting to run; score = priority band + ready time
    kubeq:{default}:delayed       ZSET  job ids waiting for a time (delay, eta, retry backoff);
                                        score = due time in ms
    kubeq:{default}:active        ZSET  job ids leased by a worker; score = lease deadline in ms
    kubeq:{default}:dead          ZSET  dead letters; score = time the job died in ms
    kubeq:{default}:workers       ZSET  worker ids consuming this queue; score = last heartbeat ms
    kubeq:{default}:busy          HASH  worker id -> number of jobs that worker holds right now
    kubeq:{default}:paused        STR   present while the queue is paused
    kubeq:{default}:wake          LIST  wake-up tokens for idle workers blocked in BLPOP
    kubeq:{default}:leases        STR   counter issuing lease tokens, unique in the queue for ever
    kubeq:{default}:transit:<worker> ZSET ids a worker's fetch leased, until the worker has
                                        read the reply; score = the fetch's number (renewed
                                        by heartbeat.lua meanwhile; expires with the worker)
    kubeq:{default}:order:<worker> STR  the token of the acks a worker sent before its fetch
                                        (fetch.lua runs only after them; expires in 60 s)
    kubeq:{default}:job:<id>      HASH  one job: payload, status, attempts, lease, result...
                                        and, written by the running task through
                                        progress.lua (fenced by its lease token): progress
                                        (JSON, current_job().set_progress) and meta (JSON
                                        object, current_job().update_meta); lapsed = the
                                        token of an expired lease not delivered again yet
    kubeq:{default}:done:<id>     LIST  one token pushed when the job ends; result() waits on it
    kubeq:{default}:sent:<token>  STR   an enqueue call's reply, kept 300 s for its resend
                                        (enqueue.lua: one character per job, 1/0/-)

Execution control (docs/architecture.md, Execution control), under the same hash tag:

    kubeq:{default}:ratelimit     HASH  the queue's rate limit: n starts per ms, burst b
    kubeq:{default}:rate          STR   the queue limiter's next theoretical start (GCRA TAT)
    kubeq:{default}:rate:<task>   STR   a task's limiter TAT; :next is the slot cursor that
                                        gives each deferred job its own future start
    kubeq:{default}:slots:<key>   SET   ids of the running jobs holding a concurrency slot
    kubeq:{default}:waiting:<key> ZSET  ids waiting for a slot; score = their ready score
    kubeq:{default}:throttled     STR   present (with a TTL) while a rate limit holds jobs back
    kubeq:{default}:expired       STR   counter of jobs that expired before they started

Fair queues (docs/fairness.md; the order is lua/_fair.lua's), under the same hash tag. A ready
job with a fairness key is in ``ready`` too, scored 10 bands higher:

    kubeq:{default}:fair          ZSET  keys with ready jobs; score = band of the key's next
                                        job * 10^13 + its virtual start tag
    kubeq:{default}:fair:q:<key>  ZSET  a key's ready job ids; score = their ready score
    kubeq:{default}:fair:idle     ZSET  keys that emptied -> finish tag, until the virtual
                                        clock passes it
    kubeq:{default}:fair:state    HASH  v (virtual clock), u (unkeyed jobs' tag), ue; gone
                                        when no key has ready jobs
    kubeq:{default}:fair:weights  HASH  key -> weight (absent: 1; "" = jobs without a key)

Flow patterns (docs/patterns.md), under the same hash tag:

    kubeq:{default}:flow:<task>:<key> STR the id of the newest job of a debounce or singleton
                                        key (flow.lua); deleted when that job ends, by any
                                        path (note_end), or is purged. The job hash holds flow
                                        (the key), flow_mode, flow_first (its first call, ms),
                                        flow_joined (calls that joined it) and cb marker 'o'
                                        (keep_latest / cancel_running: cl_key flow:<key>, 1)
    kubeq:{default}:batch:<task>:<key> STR the open batch job of a batch task's key
                                        (batch.lua); deleted when it closes (full), or when
                                        the batch ends otherwise (end_batch)
    kubeq:{default}:items:<batch> LIST  the item ids of a batch job, in the order they came;
                                        expires with the batch job's result

Worker documents (the dashboard's Workers page; one hash tag, so one MGET reads them all):

    kubeq:{workerinfo}:index         ZSET  worker id -> time of its last publish in ms
    kubeq:{workerinfo}:<worker id>   STR   JSON a worker publishes about itself; expires
                                           when the worker stops publishing

Schedules (docs/schedules.md; one hash tag, so every schedule script is one slot):

    kubeq:{schedules}:s:due / :s:warm / :s:all  ZSETs (``schedule_keys``)
    kubeq:{schedules}:s:def:<id>                HASH  one schedule (``schedule_key``)

Redis Cluster (docs/redis.md, Redis Cluster):

    kubeq:{default}:fence         never written: declared as the last KEY of every script call
                                  so that Redis refuses to run a script while the queue's slot
                                  is being resharded (see ``fence_of``)

Workflows (docs/architecture.md, Workflows), under the same hash tag:

    kubeq:{default}:handoff       ZSET  ended jobs whose callback (on_success / on_failure)
                                        is still to be enqueued; score = end time in ms.
                                        Written by ack.lua / bury in the script that ends the
                                        job, emptied by the worker's hand-off (handoff.py)
    kubeq:{default}:handoff:aside HASH  hand-off entries the worker could not read (raw
                                        entry -> why): set aside, never retried
    kubeq:{default}:sweeping      STR   the worker that claimed the queue's hand-off sweep;
                                        expires after 12 s (worker/sweeps.py)
    kubeq:{default}:deferred      ZSET  jobs waiting for their parents (depends_on)
    kubeq:{default}:dependents:<id> SET "<queue>\t<id>" of children waiting for job <id>
                                        (then "\tr" for a chord's callback: it keeps the result)
    kubeq:{default}:linking       ZSET  deferred children whose edges their caller is still
                                        registering; score = when it began (dependencies.py)
    kubeq:{default}:links:<id>    STR   JSON of that child's parents, to redo the link from
    kubeq:{default}:job:<id>      HASH  ... on_success / on_failure (callback JSON), cb
                                        (marker: s, f, d = has dependents), pending (parents
                                        not resolved), allow_failure, p:<queue>/<parent>
                                        (how each parent ended: counted once), parents /
                                        children ("<queue>/<id>" lines, for people:
                                        edges.py) and parents_more / children_more

Durable steps and waits (docs/durable.md), under the same hash tag, so a job's records and
its signal keys live in the queue's slot:

    kubeq:{default}:job:<id>      HASH  ... step:<name> (a finished step's JSON record),
                                        steps_bytes; while sleeping: wait_step, slept_at,
                                        sleep_until, signal
    kubeq:{default}:sleeping      ZSET  jobs in a durable sleep or wait; score = wake time
    kubeq:{default}:waiters:<key> ZSET  jobs waiting on signal <key>; score = since when
    kubeq:{default}:signal:<key>  STR   a signal's payload, kept for its TTL (mode "all")
    kubeq:{default}:signal:<key>:one LIST payloads of mode "one" no job waited for yet
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from kubeq import defaults

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

_QUEUE_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,128}(#[0-9]{1,3})?")
"""A name, then ``#<n>`` for partition n of a partitioned queue (kubeq.store.partitions)."""
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

    def items(self, batch_id: str) -> str:
        """LIST of a batch job's item ids, in the order they came (batch.lua)."""
        return f"{self.base}items:{batch_id}"

    def job(self, job_id: str) -> str:
        """HASH of one job's payload and state (and its step records, ``step:<name>``)."""
        return f"{self.base}job:{job_id}"

    def done(self, job_id: str) -> str:
        """LIST that receives one token when the job ends; result() waits on it."""
        return f"{self.base}done:{job_id}"

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


def queues_key(prefix: str = DEFAULT_PREFIX) -> str:
    """SET of every queue name in use, for tools that list queues (`kubeq stats`).

    It has no hash tag and needs none: only SADD and SMEMBERS touch it, never a script or a
    command with another key, so on Redis Cluster it is one key on one node, reached through
    the cluster client like any other."""
    return f"{prefix}:queues"


WORKER_TAG = "{workerinfo}"
"""The hash tag of the worker documents, so the dashboard's MGET stays in one slot."""


def worker_index_key(prefix: str = DEFAULT_PREFIX) -> str:
    """ZSET ``kubeq:{workerinfo}:index``: worker id -> time of its last publish in ms."""
    return f"{prefix}:{WORKER_TAG}:index"


def worker_info_key(worker_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """STR ``kubeq:{workerinfo}:<worker id>``: one worker's JSON document (pod, host, pid,
    queues, concurrency, pool, busy, held jobs, job counters, RSS, CPU seconds); it expires
    when the worker stops publishing (TTL >= 15 s)."""
    return f"{prefix}:{WORKER_TAG}:{worker_id}"


SCHEDULE_TAG = "{schedules}"
"""The hash tag of every schedule key: the due-time index and the definitions share one slot,
so each schedule script is atomic on Redis Cluster too (suffixes start ``s:``, which no
queue key uses)."""


def schedule_keys(prefix: str = DEFAULT_PREFIX) -> tuple[str, str, str]:
    """``(due, warm, all)``: ZSET id -> next due time (s; a claim's lease deadline while one
    firer holds it; paused schedules are absent), ZSET id -> next due minus its pre-warm
    (only schedules with ``prewarm_seconds``), ZSET id -> 0 (every schedule, for listing)."""
    base = f"{prefix}:{SCHEDULE_TAG}:s:"
    return base + "due", base + "warm", base + "all"


def schedule_key(schedule_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """HASH of one schedule: spec (JSON), rev, next, last, last_job, paused, claim, fired,
    missed, skipped, updated."""
    return f"{prefix}:{SCHEDULE_TAG}:s:def:{schedule_id}"
