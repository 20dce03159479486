"""spec.rollout parsing, a version's Deployment manifest and the removal rule (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeq_operator import deployment, rollout, versioned
from kubeq_operator.crd import LABEL_VERSION
from kubeq_operator.spec import SpecError, parse


def spec(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "redis": {"url": "redis://redis:6379/0"},
        "queues": ["default"],
        "worker": {"image": "shop:1", "tasks": "shop.tasks"},
    }
    doc.update(over)
    return doc


def test_default_is_a_rolling_update_with_the_deployment_as_before() -> None:
    s = parse(spec())
    assert not s.rollout.versioned and s.rollout.max_drain_seconds is None
    assert versioned.worker_deployment("shop", s) == "shop-worker"


def test_versioned_parses_with_its_drain_limit() -> None:
    s = parse(spec(rollout={"strategy": "Versioned", "maxDrainSeconds": 3600}))
    assert s.rollout.versioned and s.rollout.max_drain_seconds == 3600
    assert versioned.worker_deployment("shop", s) == f"shop-worker-v{s.worker_hash()[:8]}"


@pytest.mark.parametrize(
    ("doc", "field", "words"),
    [
        ({"strategy": "BlueGreen"}, "spec.rollout.strategy", "Rolling or Versioned"),
        ({"strategy": "Versioned", "maxDrainSeconds": -1}, "spec.rollout.maxDrainSeconds", ">= 0"),
        ({"maxDrainSeconds": 60}, "spec.rollout.maxDrainSeconds", "Versioned only"),
        ({"strategy": "Versioned", "drain": 1}, "spec.rollout.drain", "unknown field"),
        ("Versioned", "spec.rollout", "must be dict"),
    ],
)
def test_a_bad_rollout_names_the_field(doc: Any, field: str, words: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec(rollout=doc))
    assert e.value.field == field and words in str(e.value)


def test_rollout_settings_are_not_part_of_the_version() -> None:
    a = parse(spec(rollout={"strategy": "Versioned", "maxDrainSeconds": 10}))
    b = parse(spec(rollout={"strategy": "Versioned"}))
    assert versioned.version_of(a) == versioned.version_of(b)
    c = parse(spec(rollout={"strategy": "Versioned"}, worker={"image": "shop:2", "tasks": "t"}))
    assert versioned.version_of(c) != versioned.version_of(a)


def test_a_versions_deployment_selects_only_its_own_pods_and_tells_them_the_version() -> None:
    s = parse(spec(rollout={"strategy": "Versioned"}))
    v = versioned.version_of(s)
    m = versioned.build("shop", "ns", s, 2)
    assert m["metadata"]["name"] == f"shop-worker-v{v}"
    assert m["metadata"]["labels"][LABEL_VERSION] == v
    assert m["spec"]["selector"]["matchLabels"][LABEL_VERSION] == v
    assert m["spec"]["template"]["metadata"]["labels"][LABEL_VERSION] == v
    env = m["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "KUBEQ_VERSION", "value": v} in env
    # the rolling Deployment is unchanged: no version anywhere
    plain = deployment.build("shop", "ns", parse(spec()), 2)
    assert LABEL_VERSION not in plain["spec"]["selector"]["matchLabels"]
    assert all(
        e["name"] != "KUBEQ_VERSION"
        for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]
    )


def test_jobs_held_are_summed_per_version_of_this_taskqueues_queues() -> None:
    docs = [
        {"version": "a", "queues": ["q"], "busy": 2, "prefetched": 1},
        {"version": "a", "queues": ["q"], "busy": 0, "prefetched": 0},
        {"version": "b", "queues": ["q"], "busy": 1},
        {"version": "a", "queues": ["other"], "busy": 5},  # another TaskQueue's workers
        {"version": None, "queues": ["q"], "busy": 4},  # not versioned
    ]
    assert rollout.load_by_version(docs, {"q"}) == {"a": (3, 1), "b": (1, 1)}


def test_an_old_version_goes_when_idle_after_the_settle_time_or_after_max_drain() -> None:
    settle = rollout.RETIRE_SETTLE_SECONDS
    assert not rollout.due(0, settle - 1, None)  # a worker may not have read the mark yet
    assert rollout.due(0, settle, None)
    assert not rollout.due(1, 10_000, None)  # no limit: waits for its jobs
    assert not rollout.due(1, 59, 60)
    assert rollout.due(1, 60, 60)


def test_the_newest_version_is_scaled_without_the_old_versions_running_jobs() -> None:
    from kubeq_operator.policy import Observation

    s = parse(spec(rollout={"strategy": "Versioned"}))
    now = versioned.version_of(s)
    obs = Observation(backlog=2, in_flight=12, current_replicas=1, ok=True, busy_workers=6)
    load = {"old1": (10, 5), now: (2, 1)}
    seen = versioned.discount(obs, load, s)
    assert (seen.backlog, seen.in_flight, seen.busy_workers) == (2, 2, 1)
    assert versioned.discount(obs, load, parse(spec())) == obs  # a rolling update: as is
