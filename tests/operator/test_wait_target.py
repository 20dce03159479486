"""The pure policy: targetWaitSeconds (Little's law), scaleUp limits, starting pods
as capacity coming, fallbackReplicas, and the measured drain rate per worker (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeq_operator.drainrate import DrainRate
from kubeq_operator.policy import (
    FALLBACK_AFTER_FAILURES,
    History,
    Observation,
    ScalingSpec,
    decide,
    recommend,
)
from kubeq_operator.spec import SpecError, parse

WAIT = ScalingSpec(min_replicas=0, max_replicas=100, jobs_per_replica=4, target_wait_seconds=10.0)


@st.composite
def wait_specs(draw: st.DrawFn) -> ScalingSpec:
    lo = draw(st.integers(0, 3))
    hi = draw(st.integers(max(lo, 1), 200))
    return ScalingSpec(
        min_replicas=lo,
        max_replicas=hi,
        jobs_per_replica=draw(st.integers(1, 16)),
        activation_backlog=draw(st.integers(1, 5)),
        stabilization_seconds=draw(st.sampled_from([0, 5, 60])),
        target_wait_seconds=draw(st.floats(0.5, 600)),
        scale_up_max_pods_per_step=draw(st.one_of(st.none(), st.integers(1, 10))),
        scale_up_period_seconds=draw(st.sampled_from([0, 5, 15])),
        fallback_replicas=draw(st.one_of(st.none(), st.integers(lo, hi))),
    )


observations = st.builds(
    Observation,
    backlog=st.integers(0, 20_000),
    in_flight=st.integers(0, 400),
    current_replicas=st.integers(0, 200),
    ok=st.just(True),
    oldest_wait=st.floats(0, 3600),
    rate_per_worker=st.one_of(st.none(), st.floats(0.001, 50)),
    starting=st.integers(0, 20),
)


# -- Little's law ------------------------------------------------------------------------------


def test_littles_law_sizes_for_the_target() -> None:
    # 4 jobs/s per worker, 10 s target: 400 waiting jobs need 10 workers to start within 10 s
    obs = Observation(400, 8, 3, rate_per_worker=4.0, oldest_wait=2.0)
    assert recommend(obs, WAIT) == 10
    # the same backlog with jobsPerReplica alone would ask for 102
    assert recommend(obs, replace(WAIT, target_wait_seconds=None)) == 100  # clamped


def test_slow_jobs_need_more_workers_than_fast_ones() -> None:
    fast = Observation(100, 0, 1, rate_per_worker=10.0)
    slow = replace(fast, rate_per_worker=0.1)
    assert recommend(fast, WAIT) == 1 and recommend(slow, WAIT) == 100


def test_without_a_measured_rate_jobs_per_replica_sizes() -> None:
    assert recommend(Observation(40, 0, 0), WAIT) == 10


def test_a_late_oldest_job_asks_for_more_unless_workers_are_starting() -> None:
    on_time = Observation(100, 0, 2, rate_per_worker=1.0, oldest_wait=5.0)
    late = replace(on_time, oldest_wait=40.0)
    assert recommend(on_time, WAIT) == 10
    assert recommend(late, WAIT) == 40  # budget cut to 10 * 10 / 40 = 2.5 s (floor: a quarter)
    assert recommend(replace(late, starting=3), WAIT) == 10  # capacity coming: no overshoot


def test_busy_workers_are_kept() -> None:
    assert recommend(Observation(0, 40, 10, rate_per_worker=5.0), WAIT) == 10


@settings(max_examples=400)
@given(wait_specs(), observations)
def test_wait_target_within_bounds_and_never_zero_with_work(
    spec: ScalingSpec, obs: Observation
) -> None:
    d = decide(obs, spec, History(), 1000.0)
    assert spec.min_replicas <= d.replicas <= spec.max_replicas
    if obs.current_replicas > 0 and obs.work > 0:
        assert d.replicas > 0


@settings(max_examples=400)
@given(wait_specs(), observations, st.integers(0, 5000), st.floats(0, 600))
def test_more_backlog_or_an_older_job_never_asks_for_fewer(
    spec: ScalingSpec, obs: Observation, more: int, older: float
) -> None:
    base = recommend(obs, spec)
    assert recommend(replace(obs, backlog=obs.backlog + more), spec) >= base
    assert recommend(replace(obs, oldest_wait=obs.oldest_wait + older), spec) >= base


@settings(max_examples=400)
@given(wait_specs(), observations, st.floats(1.0, 10.0))
def test_a_faster_worker_never_asks_for_more(
    spec: ScalingSpec, obs: Observation, factor: float
) -> None:
    if obs.rate_per_worker is None:
        return
    faster = replace(obs, rate_per_worker=obs.rate_per_worker * factor)
    assert recommend(faster, spec) <= recommend(obs, spec)


@settings(max_examples=400)
@given(wait_specs(), observations)
def test_the_target_is_met_when_the_rate_holds(spec: ScalingSpec, obs: Observation) -> None:
    """With the recommended workers draining at the measured rate, the backlog starts within
    the target (unless maxReplicas caps the fleet)."""
    rate = obs.rate_per_worker
    n = recommend(obs, spec)
    if rate is None or n >= spec.max_replicas or obs.backlog < spec.activation_backlog:
        return
    assert obs.backlog / (n * rate) <= (spec.target_wait_seconds or 0) + 1e-6


# -- scale-up steps, fallback --------------------------------------------------------------------


@settings(max_examples=300)
@given(
    wait_specs(),
    st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 100)), min_size=1, max_size=40),
)
def test_scale_up_never_faster_than_its_policy(
    spec: ScalingSpec, polls: list[tuple[int, int]]
) -> None:
    history, current, ups = History(), 0, []
    for i, (backlog, in_flight) in enumerate(polls):
        t = float(i)
        d = decide(Observation(backlog, in_flight, current, rate_per_worker=1.0), spec, history, t)
        if d.replicas > current:
            step = spec.scale_up_max_pods_per_step
            if step is not None and d.replicas > spec.min_replicas:
                assert d.replicas - current <= step
                assert not ups or t - ups[-1] >= spec.scale_up_period_seconds
            ups.append(t)
        history, current = d.history, d.replicas


def test_heavy_pods_do_not_jump_from_zero_to_fifty() -> None:
    spec = replace(WAIT, scale_up_max_pods_per_step=5, scale_up_period_seconds=15)
    history, current, seen = History(), 0, []
    for t in range(0, 61):
        d = decide(Observation(10_000, 0, current), spec, history, float(t))
        history, current = d.history, d.replicas
        seen.append(current)
    assert seen[0] == 5 and seen[14] == 5 and seen[15] == 10 and seen[60] == 25
    assert "scaleUp allows 5 pods per 15s" in d.message or d.reason == "ScaleUp"


def test_fallback_replicas_after_failed_reads() -> None:
    spec = replace(WAIT, fallback_replicas=6)
    history = History()
    failed = Observation(0, 0, 2, ok=False)
    for _ in range(FALLBACK_AFTER_FAILURES - 1):
        d = decide(failed, spec, history, 0.0)
        assert d.replicas == 2 and d.reason == "RedisError"
        history = d.history
    d = decide(failed, spec, history, 0.0)
    assert d.replicas == 6 and d.reason == "Fallback"
    ok = decide(Observation(0, 0, 6), spec, d.history, 1.0)
    assert ok.history.failures == 0


def test_describe_line_has_the_numbers() -> None:
    d = decide(Observation(400, 8, 3, rate_per_worker=4.0, oldest_wait=2.0), WAIT, History(), 0)
    assert d.message.startswith("targetWait=10s rate=4/s/worker oldestWait=2.0s backlog=400")
    assert d.message.endswith("-> 10 replicas")


# -- the spec ----------------------------------------------------------------------------------


def spec_doc(**scaling: Any) -> dict[str, Any]:
    return {
        "redis": {"url": "redis://r:6379/0"},
        "worker": {"image": "i", "tasks": "t"},
        "scaling": {"maxReplicas": 20, **scaling},
    }


def test_spec_fields_parse() -> None:
    s = parse(
        spec_doc(targetWaitSeconds=30, fallbackReplicas=2, scaleUp={"maxPodsPerStep": 3})
    ).scaling
    assert (s.target_wait_seconds, s.fallback_replicas, s.scale_up_max_pods_per_step) == (
        30.0,
        2,
        3,
    )
    assert s.scale_up_period_seconds == 15.0


@pytest.mark.parametrize(
    ("scaling", "field"),
    [
        ({"targetWaitSeconds": 0}, "spec.scaling.targetWaitSeconds"),
        ({"fallbackReplicas": 21}, "spec.scaling.fallbackReplicas"),
        ({"scaleUp": {"maxPodsPerStep": 0}}, "spec.scaling.scaleUp.maxPodsPerStep"),
    ],
)
def test_spec_errors_name_the_field(scaling: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec_doc(**scaling))
    assert e.value.field == field


# -- the drain rate ------------------------------------------------------------------------------


def doc(wid: str, at: float, finished: int, queue: str = "q", failed: int = 0) -> dict[str, Any]:
    return {
        "id": wid,
        "at": at,
        "queues": [queue],
        "counts": {queue: {"finished": finished, "failed": failed, "requeued": 7}},
    }


def test_drain_rate_from_two_publishes() -> None:
    r = DrainRate(half_life=30)
    assert r.update([doc("a", 0, 0), doc("b", 0, 100)], ["q"], True, 0) is None
    rate = r.update([doc("a", 2, 8), doc("b", 2, 104, failed=2)], ["q"], True, 2)
    assert rate == pytest.approx((4 + 3) / 2)  # mean of 4/s and 3/s; requeued not counted


def test_drain_rate_ignores_unsaturated_spans_other_queues_and_restarts() -> None:
    r = DrainRate(half_life=30)
    r.update([doc("a", 0, 0)], ["q"], True, 0)
    assert r.update([doc("a", 2, 8)], ["q"], True, 2) == pytest.approx(4)
    assert r.update([doc("a", 4, 9)], ["q"], False, 4) == pytest.approx(4)  # nothing waits
    # jobs wait again from t=5: the span 4..6 was not saturated all through
    assert r.update([doc("a", 6, 10)], ["q"], True, 5) == pytest.approx(4)
    assert r.update([doc("a", 8, 0)], ["q"], True, 8) == pytest.approx(4)  # restarted
    assert r.update([doc("x", 10, 50, queue="other")], ["q"], True, 10) == pytest.approx(4)


@settings(max_examples=200)
@given(st.lists(st.floats(0.1, 20), min_size=1, max_size=50))
def test_drain_rate_stays_within_the_samples(rates: list[float]) -> None:
    r = DrainRate(half_life=10)
    count, at = 0.0, 0.0
    r.update([doc("a", at, 0)], ["q"], True, at)
    got = None
    for rate in rates:
        at += 2
        count += rate * 2
        got = r.update([doc("a", at, math.floor(count))], ["q"], True, at)
    assert got is not None
    assert min(rates) - 1 <= got <= max(rates) + 1
