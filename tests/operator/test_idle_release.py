"""How soon the policy lets idle pods go, and that it never lets busy ones go.

kubeq's scale-down defaults are short (a 15 s window, 10 pods per 1 s) because holding idle
pods after a burst was what made it cost more than tuned KEDA; that is safe only because
scale-down never asks for fewer workers than hold jobs. The existing properties
(test_policy.py) bound scale-down from below (never before the window, never faster than the
steps); these bound it from above (idle pods are released within the window and the steps)
and check the busy-worker floor, for any spec and for the defaults.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeq import defaults
from kubeq_operator.policy import History, Observation, ScalingSpec, decide


@st.composite
def specs(draw: st.DrawFn) -> ScalingSpec:
    lo = draw(st.integers(0, 3))
    hi = draw(st.integers(max(lo, 1), 60))
    wait = draw(st.one_of(st.none(), st.sampled_from([1.0, 10.0, 60.0])))
    return ScalingSpec(
        min_replicas=lo,
        max_replicas=hi,
        jobs_per_replica=draw(st.integers(1, 8)),
        stabilization_seconds=draw(st.sampled_from([0, 5, defaults.STABILIZATION_SECONDS, 60])),
        max_pods_per_step=draw(st.sampled_from([1, 4, defaults.MAX_PODS_PER_STEP, 50])),
        period_seconds=draw(st.sampled_from([0, defaults.PERIOD_SECONDS, 15])),
        idle_seconds_before_zero=draw(st.sampled_from([0, 30, defaults.IDLE_SECONDS_BEFORE_ZERO])),
        target_wait_seconds=wait,
    )


def drain(spec: ScalingSpec, busy_for: int, backlog: int) -> tuple[list[int], int]:
    """Polls every second: ``backlog`` jobs wait at t=0 and every worker is busy until
    ``busy_for``; from then on nothing is waiting or running. Returns the replicas after each
    poll and the poll at which the work ended."""
    history, current, out = History(), 0, []
    end = busy_for + 1
    horizon = end + int(
        spec.stabilization_seconds
        + (spec.max_replicas + 1) * max(spec.period_seconds, 1.0)
        + spec.idle_seconds_before_zero
        + 5
    )
    for t in range(horizon):
        working = t < end
        obs = Observation(
            backlog=backlog if t == 0 else 0,
            in_flight=current * spec.jobs_per_replica if working else 0,
            current_replicas=current,
            rate_per_worker=2.0,
            busy_workers=current if working else 0,
        )
        d = decide(obs, spec, history, float(t))
        history, current = d.history, d.replicas
        out.append(current)
    return out, end


def released_by(spec: ScalingSpec, start: int) -> tuple[float, float]:
    """From ``start`` idle replicas: the latest second by which the fleet is down to one pod
    (or minReplicas), and to minReplicas: the window, then one step per period (a step
    happens on a poll, so at least 1 s apart), and to zero once idle long enough."""
    floor = max(spec.min_replicas, 1)
    step_period = max(spec.period_seconds, 1.0)
    steps = math.ceil(max(0, start - floor) / max(1, spec.max_pods_per_step))
    to_floor = spec.stabilization_seconds + 1 + max(0, steps - 1) * step_period
    to_min = max(to_floor + step_period, spec.idle_seconds_before_zero + 1)
    return to_floor, to_min


@settings(max_examples=300, deadline=None)
@given(specs(), st.integers(0, 20), st.integers(1, 2000))
def test_idle_pods_are_released_within_the_window_and_the_steps(
    spec: ScalingSpec, busy_for: int, backlog: int
) -> None:
    replicas, end = drain(spec, busy_for, backlog)
    start = replicas[end - 1]
    to_floor, to_min = released_by(spec, start)
    floor = max(spec.min_replicas, 1)
    after_floor = replicas[end + math.ceil(to_floor) :]
    assert all(r <= max(floor, 0) for r in after_floor), (start, replicas[end:])
    after_min = replicas[end + math.ceil(to_min) :]
    assert after_min and all(r == spec.min_replicas for r in after_min), (start, replicas[end:])


def test_the_defaults_let_a_drained_burst_go_within_about_one_pod_start_up() -> None:
    # 50 busy pods (a burst's fleet) finish: with the defaults all but one are gone 15 s
    # (the window) plus four 1 s steps later, the last after 120 s idle
    spec = ScalingSpec(max_replicas=50, target_wait_seconds=10.0)
    replicas, end = drain(spec, busy_for=30, backlog=5000)
    assert replicas[end - 1] == 50
    after = replicas[end:]
    first_down = next(i for i, r in enumerate(after) if r < 50)
    assert first_down == defaults.STABILIZATION_SECONDS
    one_left = after.index(1)
    assert one_left == defaults.STABILIZATION_SECONDS + math.ceil(49 / 10) - 1
    assert after.index(0) == defaults.IDLE_SECONDS_BEFORE_ZERO
    assert released_by(spec, 50)[0] >= one_left


observations = st.builds(
    Observation,
    backlog=st.integers(0, 5000),
    in_flight=st.integers(0, 400),
    current_replicas=st.integers(0, 80),
    oldest_wait=st.floats(0, 600),
    rate_per_worker=st.one_of(st.none(), st.floats(0.01, 50)),
    starting=st.integers(0, 10),
    busy_workers=st.integers(0, 80),
)


@settings(max_examples=400)
@given(specs(), observations, st.lists(st.integers(0, 80), max_size=5))
def test_scale_down_never_lets_busy_workers_go(
    spec: ScalingSpec, obs: Observation, earlier: list[int]
) -> None:
    # whatever the window remembers, a decision never asks for fewer workers than hold jobs
    # (within maxReplicas, which only the spec moves)
    history = History(
        recommendations=tuple((float(i), n) for i, n in enumerate(sorted(earlier, reverse=True)))
    )
    busy = min(obs.busy_workers, obs.current_replicas)
    obs = Observation(**{**obs.__dict__, "busy_workers": busy})
    d = decide(obs, spec, history, 100.0)
    assert d.replicas >= min(busy, spec.max_replicas)
