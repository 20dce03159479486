"""The scaling policy: a pure function from what was observed to how many workers to run.

It exists apart from the handlers so it can be unit- and property-tested without Redis or
Kubernetes, and replayed by a simulation. ``decide(observation, spec, history, now)`` returns
a :class:`Decision` whose ``history`` is fed to the next call; nothing else is remembered.

The rules (docs/architecture.md, "Scaling decisions"):

- Never fewer than the workers that hold jobs now (a long job is not interrupted to save a
  pod: KEDA's scale-in removes pods whatever they run).
- Without ``targetWaitSeconds``: ``wanted = ceil((backlog + in_flight) / jobsPerReplica)``.
  With it, and once a drain rate per worker ``r`` (jobs/s) has been measured: Little's law,
  ``wanted = max(ceil(backlog / (r * T)), ceil(in_flight / jobsPerReplica))`` where ``T`` is
  the target, shortened (down to T/4) when the oldest job has already waited longer than the
  target and no worker is still starting (a starting worker is capacity coming: a burst does
  not overshoot while pods start). Either way clamped to ``[min, max]``.
- Up at once, or by at most ``scaleUp.maxPodsPerStep`` pods per ``scaleUp.periodSeconds``.
  From zero as soon as ``backlog >= activationBacklog`` (or anything is in flight, which means
  workers exist that we do not count).
- Down only to the highest recommendation of the last ``stabilizationSeconds`` (as the HPA
  does), at most ``maxPodsPerStep`` pods per ``periodSeconds``.
- To zero only after backlog and in-flight have both been 0 for ``idleSecondsBeforeZero``
  (and, like any scale-down, for the stabilization window).
- A failed read holds the current replicas (clamped to the bounds, which only the spec can
  move); it never scales down because of an error, and it restarts the idle clock. With
  ``fallbackReplicas``, ``FALLBACK_AFTER_FAILURES`` failed reads in a row set that many.
- A fresh history (operator restart) counts as "the current replicas were recommended now",
  so a restart never causes an immediate scale-down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from kubeq import defaults
from kubeq.store.stats import QueueStats

UP = "up"
DOWN = "down"
NONE = "none"


@dataclass(frozen=True)
class ScalingSpec:
    """``spec.scaling`` of a TaskQueue, parsed. Defaults from ``kubeq.defaults`` (as the CRD's)."""

    min_replicas: int = defaults.MIN_REPLICAS
    """Never fewer workers than this. 0 allows scale-to-zero."""
    max_replicas: int = defaults.MAX_REPLICAS
    """Never more workers than this."""
    jobs_per_replica: int = defaults.CONCURRENCY
    """Target of (backlog + in-flight) per worker; defaults to the worker's concurrency."""
    activation_backlog: int = defaults.ACTIVATION_BACKLOG
    """From zero workers, scale up once this many jobs are ready."""
    poll_seconds: float = float(defaults.POLL_SECONDS)
    """How often the operator reads the queues (not used by the policy itself)."""
    stabilization_seconds: float = float(defaults.STABILIZATION_SECONDS)
    """Scale down only to the highest recommendation of this many past seconds."""
    max_pods_per_step: int = defaults.MAX_PODS_PER_STEP
    """At most this many workers removed by one scale-down step."""
    period_seconds: float = float(defaults.PERIOD_SECONDS)
    """At least this long between two scale-down steps."""
    idle_seconds_before_zero: float = float(defaults.IDLE_SECONDS_BEFORE_ZERO)
    """Backlog and in-flight must both have been 0 this long before going to zero."""
    target_wait_seconds: float | None = None
    """Size the fleet so a job waits about this long (Little's law); None: jobsPerReplica."""
    scale_up_max_pods_per_step: int | None = None
    """At most this many workers added per scale-up step; None: all at once."""
    scale_up_period_seconds: float = float(defaults.SCALE_UP_PERIOD_SECONDS)
    """At least this long between two limited scale-up steps."""
    fallback_replicas: int | None = None
    """Replicas to run once the queues could not be read several times; None: hold."""
    wait_of_worst_key: bool = False
    """With a wait target: the wait that shortens it is the worst fairness key's."""
    fair_top_keys: int = defaults.FAIR_TOP
    """Fairness keys whose wait is exported as a metric (the longest waits)."""

    def clamp(self, n: int) -> int:
        return max(self.min_replicas, min(self.max_replicas, n))


@dataclass(frozen=True)
class Observation:
    """What one poll saw. ``ok=False`` means the Redis read failed (numbers meaningless)."""

    backlog: int
    in_flight: int
    current_replicas: int
    ok: bool = True
    oldest_wait: float = 0.0
    """Seconds the oldest ready job has waited."""
    rate_per_worker: float | None = None
    """Measured jobs finished per second per busy worker (smoothed); None: not known yet."""
    starting: int = 0
    """Workers asked for but not ready yet (capacity coming)."""
    busy_workers: int = 0
    """Live workers holding at least one job: never asked to go while they work."""
    worst_key: str | None = None
    """The fairness key whose next job has waited longest (read only when asked for)."""
    worst_key_wait: float = 0.0

    @property
    def work(self) -> int:
        return self.backlog + self.in_flight


@dataclass(frozen=True)
class History:
    """What the policy remembers between polls (returned in each Decision)."""

    recommendations: tuple[tuple[float, int], ...] = ()
    """The stabilization window's (time, clamped recommendation) pairs that can still be its
    highest: times rising, values strictly falling (see :func:`window_push`)."""
    idle_since: float | None = None
    """Since when backlog + in-flight has been 0 (None: not idle)."""
    last_scale_down: float | None = None
    """When the last scale-down step was decided."""
    last_scale: float | None = None
    """When replicas last changed, either way."""
    last_scale_up: float | None = None
    """When the last scale-up step was decided."""
    failures: int = 0
    """Failed reads in a row."""


@dataclass(frozen=True)
class Decision:
    replicas: int
    """Replicas to set (equal to the current ones when nothing changes)."""
    direction: str
    """"up", "down" or "none"."""
    reason: str
    """CamelCase reason, used for the Event and the Scaling condition."""
    message: str
    """Human-readable, with the numbers behind the decision."""
    wanted: int
    """The clamped recommendation of this poll alone, before stabilization and steps."""
    history: History = field(default_factory=History)


def limited_backlog(backlog: int, rate_per_second: float, poll_seconds: float) -> int:
    """The part of a rate-limited queue's backlog that needs workers: the jobs its limit
    lets start before the next poll. The rest wait for the rate, not for workers, so a queue
    limited to 10/s with jobs of 1 s settles near 10 busy slots (in flight) plus this
    headroom, not ``backlog / jobsPerReplica`` pods. A task's own rate limit needs nothing
    here: its held-back jobs wait in the delayed set, which is not backlog."""
    if rate_per_second <= 0:
        return backlog
    return min(backlog, math.ceil(rate_per_second * max(1.0, poll_seconds)))


def window_push(
    window: tuple[tuple[float, int], ...], now: float, value: int, seconds: float
) -> tuple[tuple[float, int], ...]:
    """Add ``(now, value)`` to a stabilization window and drop what can no longer be its max.

    A monotonic queue: an entry older than ``seconds`` has left the window, and an entry
    whose value is <= a newer one's can never be the highest again (the newer one outlives
    it). What is left has rising times and strictly falling values, so the highest is the
    first, and its length is bounded by the number of distinct values (at most
    maxReplicas + 1), not by the polls in the window (a 1-day window at 0.1 s is 864,000).
    """
    horizon = now - seconds
    start = 0
    while start < len(window) and window[start][0] < horizon:
        start += 1
    end = len(window)
    while end > start and window[end - 1][1] <= value:
        end -= 1
    return (*window[start:end], (now, value))


FALLBACK_AFTER_FAILURES = 3
"""Failed reads in a row before ``fallbackReplicas`` applies (KEDA's failureThreshold)."""
URGENCY_FLOOR = 0.25
"""A late oldest job shortens the wait target to at most this fraction of it."""


def wait_budget(obs: Observation, spec: ScalingSpec) -> float:
    """The seconds the backlog may take to drain: the target, shortened when the oldest job is
    already late (target**2 / oldest, at least a quarter of the target), but not while workers
    are starting: they are capacity coming, and the wait they cause is not a reason for more."""
    target = spec.target_wait_seconds or 0.0
    oldest = worst_wait(obs, spec)
    if obs.starting > 0 or oldest <= target:
        return target
    return max(target * URGENCY_FLOOR, target * target / oldest)


def worst_wait(obs: Observation, spec: ScalingSpec) -> float:
    """The wait a late job shortens the target by: the queue's oldest job's, or with
    ``waitOfWorstKey`` the wait of the fairness key whose next job waited longest."""
    if spec.wait_of_worst_key and obs.worst_key is not None:
        return obs.worst_key_wait
    return obs.oldest_wait


def raw_wanted(obs: Observation, spec: ScalingSpec) -> int:
    """Workers this observation asks for before bounds: Little's law or jobsPerReplica."""
    per_replica = max(1, spec.jobs_per_replica)
    rate = obs.rate_per_worker
    if spec.target_wait_seconds and rate is not None and rate > 0:
        # L = lambda * W: draining the backlog within the budget takes backlog / budget jobs/s,
        # i.e. that over the rate of one worker; the jobs held now keep their workers
        drain = math.ceil(obs.backlog / (rate * wait_budget(obs, spec)) - 1e-9)
        return max(drain, math.ceil(obs.in_flight / per_replica), obs.busy_workers)
    return max(math.ceil(obs.work / per_replica), obs.busy_workers)


def recommend(obs: Observation, spec: ScalingSpec) -> int:
    """The replicas this observation alone asks for, clamped, ignoring idle and history."""
    raw = raw_wanted(obs, spec)
    if raw == 0 and obs.work > 0:
        raw = 1  # work exists: at least one worker (a small backlog at a slow rate rounds up)
    if obs.current_replicas == 0 and obs.in_flight == 0 and obs.backlog < spec.activation_backlog:
        raw = 0  # below the activation threshold, zero stays zero
    return spec.clamp(raw)


def explain(obs: Observation, spec: ScalingSpec) -> str:
    """The numbers behind a decision, for its Event and the Scaling condition (one line)."""
    rate = obs.rate_per_worker
    if spec.target_wait_seconds and rate is not None and rate > 0:
        worst = (
            f"worstKey={obs.worst_key} keyWait={obs.worst_key_wait:.1f}s "
            if spec.wait_of_worst_key and obs.worst_key is not None
            else ""
        )
        return (
            f"targetWait={spec.target_wait_seconds:g}s rate={rate:.3g}/s/worker "
            f"{worst}oldestWait={obs.oldest_wait:.1f}s backlog={obs.backlog} "
            f"inFlight={obs.in_flight} starting={obs.starting} current={obs.current_replicas}"
        )
    basis = (
        f"targetWait={spec.target_wait_seconds:g}s (rate not measured yet) "
        if spec.target_wait_seconds
        else ""
    )
    return (
        f"{basis}backlog={obs.backlog} inFlight={obs.in_flight} "
        f"jobsPerReplica={spec.jobs_per_replica} current={obs.current_replicas}"
    )


def limit_up(wanted: int, current: int, spec: ScalingSpec, history: History, now: float) -> int:
    """``wanted`` within the scale-up rate: ``scaleUp.maxPodsPerStep`` per ``periodSeconds``
    (a raised minReplicas applies at once, as a lowered maxReplicas does)."""
    step = spec.scale_up_max_pods_per_step
    if step is None or wanted <= current:
        return wanted
    last = history.last_scale_up
    if last is not None and now - last < spec.scale_up_period_seconds:
        return max(current, spec.min_replicas)
    return max(min(wanted, current + step), spec.min_replicas)


def decide(obs: Observation, spec: ScalingSpec, history: History, now: float) -> Decision:
    """The next replicas for one TaskQueue. Pure: same inputs, same decision."""
    current = obs.current_replicas
    if not obs.ok:
        failures = history.failures + 1
        hold = spec.clamp(current)
        message = f"holding {hold} replicas: the queue could not be read"
        reason = "RedisError"
        if spec.fallback_replicas is not None and failures >= FALLBACK_AFTER_FAILURES:
            hold = spec.clamp(spec.fallback_replicas)
            reason = "Fallback"
            message = (
                f"{hold} replicas (fallbackReplicas): the queue could not be read "
                f"{failures} times in a row"
            )
        return Decision(
            replicas=hold,
            direction=_direction(current, hold),
            reason=reason,
            message=message,
            wanted=hold,
            history=replace(history, idle_since=None, failures=failures),
        )

    wanted = recommend(obs, spec)
    idle_since = (
        (history.idle_since if history.idle_since is not None else now) if (obs.work == 0) else None
    )

    recs = window_push(
        history.recommendations or ((now, current),), now, wanted, spec.stabilization_seconds
    )
    numbers = explain(obs, spec)
    hist = replace(history, recommendations=recs, idle_since=idle_since, failures=0)

    if wanted >= current:
        up = limit_up(wanted, current, spec, history, now)
        reason = "ScaleUp" if up > current else "Steady"
        limited = ""
        if up > current:
            hist = replace(hist, last_scale=now, last_scale_up=now)
        if up < wanted:
            reason = "ScaleUp" if up > current else "ScaleUpLimited"
            limited = (
                f" (wanted {wanted}; scaleUp allows {spec.scale_up_max_pods_per_step} pods "
                f"per {spec.scale_up_period_seconds:g}s)"
            )
        return Decision(
            replicas=up,
            direction=_direction(current, up),
            reason=reason,
            message=f"{numbers} -> {up} replicas{limited}",
            wanted=wanted,
            history=hist,
        )

    # Going down: the highest recommendation of the window, in bounded steps.
    stabilized = recs[0][1]  # the window's highest (window_push keeps it first)
    target = max(stabilized, current - max(1, spec.max_pods_per_step), spec.min_replicas)
    target = min(target, spec.max_replicas)  # a lowered maxReplicas applies at once
    if target == 0 and spec.max_replicas > 0:  # maxReplicas 0 means none, work or not
        idle_for = 0.0 if idle_since is None else now - idle_since
        if idle_for < spec.idle_seconds_before_zero:
            target = 1
    reason = "ScaleDown"
    if target >= current or (
        history.last_scale_down is not None and now - history.last_scale_down < spec.period_seconds
    ):
        target = min(current, spec.max_replicas)
        reason = "Stabilizing"
    if target < current:
        hist = replace(hist, last_scale_down=now, last_scale=now)
        reason = "ScaleToZero" if target == 0 else "ScaleDown"
    return Decision(
        replicas=target,
        direction=_direction(current, target),
        reason=reason,
        message=(
            f"{numbers} -> {target} replicas (wanted {wanted}, highest in the last "
            f"{spec.stabilization_seconds:g}s {stabilized})"
        ),
        wanted=wanted,
        history=hist,
    )


def _direction(current: int, new: int) -> str:
    if new > current:
        return UP
    if new < current:
        return DOWN
    return NONE


def observe(
    stats: list[QueueStats] | None,
    current: int,
    poll_seconds: float = defaults.POLL_SECONDS,
    rate: float | None = None,
    starting: int = 0,
) -> Observation:
    """What the scaling policy sees of this pass (``stats`` None: the read failed)."""
    # a paused queue's jobs wait for `kubeq resume`, not for more workers
    running = [s for s in stats if not s.paused] if stats else []
    busy = {w for s in stats or () for w, n in s.workers.items() if n > 0}
    return Observation(
        # a rate-limited queue's jobs wait for its rate (docs/architecture.md, Execution
        # control)
        backlog=sum(limited_backlog(s.backlog, s.rate_limit, poll_seconds) for s in running),
        in_flight=sum(s.in_flight for s in stats) if stats else 0,
        current_replicas=current,
        ok=stats is not None,
        oldest_wait=max((s.oldest_ready_age for s in running), default=0.0),
        rate_per_worker=rate,
        starting=starting,
        busy_workers=len(busy),
    )
