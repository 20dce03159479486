"""Fair queues without Redis: the fairness key a job carries to enqueue.lua (a value, a
function of the arguments, per call), refused where it is written; weights checked; and the
scaling policy's worst-key switch, its decision line and the bounded metric series."""

from __future__ import annotations

import orjson
import pytest

import kubeq
from kubeq.client.enqueue import plan_enqueue
from kubeq.store.fairness import FairStats, KeyStats, check_weight
from kubeq.store.keys import FAIR_BANDS, PRIORITY_BAND, ready_score, split_ready_score
from kubeq.store.scripts import source
from kubeq.store.stats import QueueStats
from kubeq_operator import fairscale, metrics
from kubeq_operator.policy import Observation, ScalingSpec, explain, wait_budget
from kubeq_operator.spec import SpecError, parse


def _fk(args: list[object], group: int = 0) -> object:
    """The control field 'fk' of the group'th group of one enqueue.lua call."""
    o = 3
    for _ in range(group):
        o += 6 + 2 * int(args[o])  # type: ignore[call-overload]
    raw = args[o + 5]
    return orjson.loads(raw).get("fk") if raw else None


def test_a_fair_key_travels_as_a_value_a_function_or_per_call() -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task(fair_key=lambda account, doc: account)
    def render(account: str, doc: str) -> None: ...

    @app.task(fair_key="reports")
    def report(day: str) -> None: ...

    plan = plan_enqueue(
        [
            render.s("acme", "d"),
            render.s("globex", "d"),
            report.s("x"),
            report.s("y").set(fair_key="z"),
        ]
    )
    args = plan.calls[0][2]
    assert [_fk(args, g) for g in range(4)] == ["acme", "globex", "reports", "z"]
    assert "k == 'fk'" in source("enqueue")


@pytest.mark.parametrize("bad", ["", "x" * 201, "tab\there", 7])
def test_a_bad_fair_key_names_the_field(bad: object) -> None:
    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task
    def t() -> None: ...

    with pytest.raises(ValueError, match="fair_key"):
        plan_enqueue([t.s().set(fair_key=bad)])
    with pytest.raises(ValueError, match="fair_key"):
        app.task(name="f1", fair_key=bad)

    @app.task(name="f2", fair_key=lambda: bad)
    def f2() -> None: ...

    with pytest.raises(ValueError, match="the key its fair_key function returned"):
        f2.s()


@pytest.mark.parametrize("weight", [0, -1, 1001, float("nan"), float("inf"), True, "3"])
def test_a_bad_weight_names_the_key(weight: object) -> None:
    with pytest.raises(ValueError, match="the weight of fair key 'acme'"):
        check_weight("acme", weight)
    assert check_weight("", 2) == 2.0  # "" weighs the jobs without a key


def _obs(**kw: object) -> Observation:
    base: dict[str, object] = {"backlog": 100, "in_flight": 0, "current_replicas": 2}
    return Observation(**{**base, "rate_per_worker": 1.0, **kw})  # type: ignore[arg-type]


def test_the_worst_key_shortens_the_target_only_with_the_switch_and_is_named() -> None:
    obs = _obs(oldest_wait=1.0, worst_key="acme", worst_key_wait=40.0)
    plain = ScalingSpec(target_wait_seconds=10)
    keyed = ScalingSpec(target_wait_seconds=10, wait_of_worst_key=True)
    assert wait_budget(obs, plain) == 10
    assert wait_budget(obs, keyed) == 10 * 10 / 40
    assert "worstKey=acme keyWait=40.0s" in explain(obs, keyed)
    assert "worstKey" not in explain(obs, plain)


def test_the_spec_switch_and_top_keys_parse_and_refuse_bad_values() -> None:
    spec = parse(
        {
            "queues": ["q"],
            "redis": {"url": "redis://r:6379/0"},
            "worker": {"image": "w:1", "tasks": "t"},
            "scaling": {"waitOfWorstKey": True, "fairTopKeys": 3},
        }
    )
    assert (spec.scaling.wait_of_worst_key, spec.scaling.fair_top_keys) == (True, 3)
    with pytest.raises(SpecError, match=r"spec\.scaling\.fairTopKeys"):
        parse(
            {
                "queues": ["q"],
                "redis": {"url": "redis://r:6379/0"},
                "worker": {"image": "w:1", "tasks": "t"},
                "scaling": {"fairTopKeys": 1000},
            }
        )
    with pytest.raises(SpecError, match=r"spec\.scaling\.waitOfWorstKey"):
        parse(
            {
                "queues": ["q"],
                "redis": {"url": "redis://r:6379/0"},
                "worker": {"image": "w:1", "tasks": "t"},
                "scaling": {"waitOfWorstKey": "yes"},
            }
        )


def test_the_key_wait_series_stay_bounded_to_the_top_keys() -> None:
    stats = [QueueStats("q", 0, 0, 0, 0, 0, 0.0, False, fair_keys=3)]

    def shown() -> set[str]:
        return {
            s.labels["key"]
            for m in metrics.REGISTRY.collect()
            for s in m.samples
            if s.name == "kubeq_queue_fair_key_wait_seconds" and s.labels["taskqueue"] == "t"
        }

    rows = [KeyStats("a", 1, 5.0, 1.0), KeyStats("b", 1, 4.0, 1.0)]
    fairscale.publish("ns", "t", stats, [FairStats("q", 3, 3, 0, 0.0, rows)])
    assert shown() == {"a", "b"}
    fairscale.publish(
        "ns", "t", stats, [FairStats("q", 3, 3, 0, 0.0, [KeyStats("c", 1, 9.0, 1.0)])]
    )
    assert shown() == {"c"}  # a and b left the top: their series are gone
    assert fairscale.worst([FairStats("q", 3, 3, 0, 0.0, rows)]) == ("a", 5.0)
    metrics.forget("ns", "t", ["q"])
    assert shown() == set()


def test_spec_fairness_parses_per_queue_and_names_a_bad_weight() -> None:
    base = {
        "queues": ["q"],
        "redis": {"url": "redis://r:6379/0"},
        "worker": {"image": "w:1", "tasks": "t"},
    }
    spec = parse({**base, "fairness": {"q": {"acme": 3, "": 2}}})
    assert spec.fairness == (("q", (("", 2.0), ("acme", 3.0))),)
    with pytest.raises(SpecError, match=r"spec\.fairness\.other.*not one of spec\.queues"):
        parse({**base, "fairness": {"other": {"a": 1}}})
    with pytest.raises(SpecError, match=r"spec\.fairness\.q.*weight of fair key 'acme'"):
        parse({**base, "fairness": {"q": {"acme": 0}}})


def test_a_keyed_jobs_ready_score_reads_back_as_its_priority_and_time() -> None:
    # the dashboard lists the ready set: a keyed job is scored FAIR_BANDS bands higher
    keyed = FAIR_BANDS * PRIORITY_BAND + ready_score(7, 1_700_000_000_000)
    assert split_ready_score(keyed) == (7, 1_700_000_000_000)
    assert f"local FOFF = {FAIR_BANDS} * BAND" in source("fetch")


def test_the_gateway_takes_a_fair_key_and_names_a_bad_one() -> None:
    pytest.importorskip("starlette")
    from kubeq.gateway.jobs import parse_body
    from kubeq.gateway.kube import Refused

    (call,) = parse_body(b'{"task": "t.x", "fair_key": "acme"}', ("q",))
    assert call.fair_key == "acme"
    with pytest.raises(Refused, match="fair_key") as bad:
        parse_body(b'{"task": "t.x", "fair_key": ""}', ("q",))
    assert bad.value.field == "fair_key"
