"""The scaling policy as a pure function: examples and properties (hypothesis)."""

from __future__ import annotations

import itertools
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from kubeq_operator.policy import (
    UP,
    Decision,
    History,
    Observation,
    ScalingSpec,
    decide,
    limited_backlog,
)

SPEC = ScalingSpec(
    min_replicas=0,
    max_replicas=5,
    jobs_per_replica=4,
    activation_backlog=1,
    stabilization_seconds=10,
    max_pods_per_step=2,
    period_seconds=3,
    idle_seconds_before_zero=20,
)


@st.composite
def specs(draw: st.DrawFn) -> ScalingSpec:
    lo = draw(st.integers(0, 5))
    hi = draw(st.integers(max(lo, 1), 30))
    return ScalingSpec(
        min_replicas=lo,
        max_replicas=hi,
        jobs_per_replica=draw(st.integers(1, 20)),
        activation_backlog=draw(st.integers(1, 50)),
        stabilization_seconds=draw(st.sampled_from([0, 1, 5, 60])),
        max_pods_per_step=draw(st.integers(1, 10)),
        period_seconds=draw(st.sampled_from([0, 1, 15])),
        idle_seconds_before_zero=draw(st.sampled_from([0, 1, 30, 120])),
    )


observations = st.builds(
    Observation,
    backlog=st.integers(0, 10_000),
    in_flight=st.integers(0, 500),
    current_replicas=st.integers(0, 40),
    ok=st.booleans(),
)


@st.composite
def histories(draw: st.DrawFn, now: float = 1000.0) -> History:
    recs = draw(st.lists(st.tuples(st.floats(now - 200, now), st.integers(0, 40)), max_size=5))
    idle = draw(st.one_of(st.none(), st.floats(now - 300, now)))
    down = draw(st.one_of(st.none(), st.floats(now - 100, now)))
    return History(recommendations=tuple(sorted(recs)), idle_since=idle, last_scale_down=down)


def run(spec: ScalingSpec, script: list[tuple[float, int, int]], start: int = 0) -> list[Decision]:
    """Feed (time, backlog, in_flight) polls through the policy, applying each decision."""
    history = History()
    current = start
    out = []
    for t, backlog, in_flight in script:
        d = decide(Observation(backlog, in_flight, current), spec, history, t)
        out.append(d)
        history, current = d.history, d.replicas
    return out


# -- examples ------------------------------------------------------------------------------


def test_from_zero_in_one_poll_at_activation_backlog() -> None:
    d = decide(Observation(1, 0, 0), SPEC, History(), 0)
    assert (d.replicas, d.direction, d.reason) == (1, UP, "ScaleUp")
    assert "backlog=1" in d.message


def test_below_activation_zero_stays_zero() -> None:
    spec = replace(SPEC, activation_backlog=10)
    assert decide(Observation(9, 0, 0), spec, History(), 0).replicas == 0
    assert decide(Observation(10, 0, 0), spec, History(), 0).replicas == 3


def test_up_at_once_to_ceil_and_clamped() -> None:
    assert decide(Observation(9, 4, 1), SPEC, History(), 0).replicas == 4  # ceil(13/4)
    assert decide(Observation(500, 0, 1), SPEC, History(), 0).replicas == 5  # max


def test_in_flight_counts() -> None:
    # a queue-length scaler would see 0 and scale down busy workers
    d = run(SPEC, [(t, 0, 12) for t in range(0, 60)], start=3)
    assert all(x.replicas == 3 for x in d)


def test_down_after_window_in_steps_then_zero_after_idle() -> None:
    script = [(0.0, 20, 0)] + [(float(t), 0, 0) for t in range(1, 60)]
    ds = run(SPEC, script)
    replicas = [d.replicas for d in ds]
    assert replicas[0] == 5
    first_down = next(i for i, r in enumerate(replicas) if r < 5)
    assert first_down >= SPEC.stabilization_seconds  # not before the window
    downs = [(i, replicas[i - 1], r) for i, r in enumerate(replicas) if i and r < replicas[i - 1]]
    assert all(before - after <= SPEC.max_pods_per_step for _, before, after in downs)
    assert all(b[0] - a[0] >= SPEC.period_seconds for a, b in itertools.pairwise(downs))
    zero_at = replicas.index(0)
    assert zero_at >= 1 + SPEC.idle_seconds_before_zero
    assert replicas[-1] == 0
    assert ds[zero_at].reason == "ScaleToZero"


def test_read_error_holds() -> None:
    ds = run(SPEC, [(0.0, 20, 0)])
    bad = decide(Observation(0, 0, 5, ok=False), SPEC, ds[-1].history, 100)
    assert (bad.replicas, bad.reason) == (5, "RedisError")
    assert bad.history.idle_since is None


def test_restart_does_not_scale_down_at_once() -> None:
    d = decide(Observation(0, 0, 4), SPEC, History(), 1000)
    assert d.replicas == 4


def test_lowered_max_applies_at_once() -> None:
    ds = run(SPEC, [(0.0, 20, 0)])
    d = decide(Observation(20, 0, 5), replace(SPEC, max_replicas=2), ds[-1].history, 1)
    assert d.replicas == 2


# -- properties ----------------------------------------------------------------------------


@settings(max_examples=400)
@given(specs(), observations, histories())
def test_never_outside_bounds(spec: ScalingSpec, obs: Observation, hist: History) -> None:
    d = decide(obs, spec, hist, 1000.0)
    assert spec.min_replicas <= d.replicas <= spec.max_replicas


@settings(max_examples=400)
@given(specs(), observations, histories())
def test_never_to_zero_while_work_exists(
    spec: ScalingSpec, obs: Observation, hist: History
) -> None:
    d = decide(obs, spec, hist, 1000.0)
    if obs.current_replicas > 0 and (obs.work > 0 or not obs.ok):
        assert d.replicas > 0
    if obs.in_flight > 0 or (obs.ok and obs.backlog >= spec.activation_backlog):
        assert d.replicas >= min(1, spec.max_replicas) or not obs.ok


@settings(max_examples=400)
@given(specs(), observations, histories())
def test_never_down_on_read_error(spec: ScalingSpec, obs: Observation, hist: History) -> None:
    d = decide(replace(obs, ok=False), spec, hist, 1000.0)
    assert d.replicas == spec.clamp(obs.current_replicas)
    assert d.reason == "RedisError"


@settings(max_examples=400)
@given(specs(), observations, histories(), st.integers(0, 5000))
def test_monotone_in_backlog(spec: ScalingSpec, obs: Observation, hist: History, more: int) -> None:
    obs = replace(obs, ok=True)
    low = decide(obs, spec, hist, 1000.0)
    high = decide(replace(obs, backlog=obs.backlog + more), spec, hist, 1000.0)
    assert high.replicas >= low.replicas


@settings(max_examples=200)
@given(
    specs(),
    st.lists(st.tuples(st.integers(0, 300), st.integers(0, 40)), min_size=1, max_size=60),
    st.integers(0, 40),
)
def test_window_and_steps_hold_over_time(
    spec: ScalingSpec, polls: list[tuple[int, int]], start: int
) -> None:
    script = [(float(i), b, f) for i, (b, f) in enumerate(polls)]
    ds = run(spec, script, start=start)
    current = start
    last_down: float | None = None
    wanted_at: list[tuple[float, int]] = [(0.0, start)]
    idle_since: float | None = None
    for (t, backlog, in_flight), d in zip(script, ds, strict=True):
        wanted_at.append((t, d.wanted))
        idle_since = (
            (idle_since if idle_since is not None else t) if backlog + in_flight == 0 else None
        )
        if d.replicas < current:
            window = [w for s, w in wanted_at if s >= t - spec.stabilization_seconds]
            if current <= spec.max_replicas:  # not a lowered max
                assert d.replicas >= max(window)
                assert current - d.replicas <= spec.max_pods_per_step
                assert last_down is None or t - last_down >= spec.period_seconds
            last_down = t
            if d.replicas == 0:
                assert idle_since is not None
                assert t - idle_since >= spec.idle_seconds_before_zero
        current = d.replicas


def test_a_rate_limited_queue_asks_only_for_the_workers_its_limit_lets_work() -> None:
    # 10/s with jobs of 1 s: ~10 running; 5,000 waiting for the rate are not 5,000 jobs of
    # work for new pods, only the 10 the limit lets start before the next poll are
    spec = replace(SPEC, max_replicas=100, jobs_per_replica=4)
    backlog = limited_backlog(5000, 10.0, 1.0)
    assert backlog == 10
    obs = Observation(backlog=backlog, in_flight=10, current_replicas=5)
    assert decide(obs, spec, History(), 0.0).replicas == 5  # (10 + 10) / 4
    unlimited = Observation(backlog=5000, in_flight=10, current_replicas=5)
    assert decide(unlimited, spec, History(), 0.0).replicas == 100
    assert limited_backlog(3, 10.0, 1.0) == 3  # less than the headroom: all of it
    assert limited_backlog(5000, 0.0, 1.0) == 5000  # no queue limit: unchanged
    assert limited_backlog(5000, 2.0, 5.0) == 10  # the headroom spans one poll
