"""Pinning's pure logic: the pinned queue's name, the queues a versioned worker consumes, the
newest version's pinned backlog in its scaling, the pods an old version keeps for its pinned
jobs, and the refusals of a bad version."""

from __future__ import annotations

import pytest

from kubeq.store.keys import QueueKeys, pin_of
from kubeq.store.versions import check_version, pinned_queue, unpinned, worker_queues
from kubeq_operator import pinned, versioned
from kubeq_operator.policy import Observation
from kubeq_operator.spec import parse
from tests.operator.test_rollout_spec import spec


def test_a_pinned_queue_keeps_its_pool_and_partition() -> None:
    assert pinned_queue("default", "3f2a9c1e") == "default~3f2a9c1e"
    assert pinned_queue("default@gpu#2", "v1") == "default@gpu~v1#2"
    assert pinned_queue("default~old", "new") == "default~new"
    for name in ("default~3f2a9c1e", "default@gpu~v1#2"):
        assert QueueKeys.of(name).base == f"kubeq:{{{name}}}:"  # its own hash tag
    assert pin_of("default@gpu~v1#2") == "v1" and pin_of("default#2") is None
    assert unpinned("default@gpu~v1#2") == "default@gpu#2"


def test_a_versioned_worker_consumes_each_pinned_queue_first() -> None:
    assert worker_queues(["a", "b#1"], "v1") == ["a~v1", "a", "b~v1#1", "b#1"]
    assert worker_queues(["a"], None) == ["a"]


@pytest.mark.parametrize("bad", ["", "a/b", "-x", "x" * 65, 7])
def test_a_bad_version_is_refused_naming_the_field(bad: object) -> None:
    with pytest.raises(ValueError, match="version must be a worker version"):
        check_version(bad)


def test_the_newest_versions_pinned_backlog_counts_in_its_scaling() -> None:
    s = parse(spec(rollout={"strategy": "Versioned"}))
    obs = Observation(backlog=2, in_flight=0, current_replicas=1, ok=True)
    load = versioned.Load()
    load.pinned = 5
    assert versioned.discount(obs, load, s).backlog == 7
    # in flight, the queues count only unpinned jobs (6: 4 on the newest version, 2 on old1);
    # old1's workers also hold 3 pinned jobs, the newest version's 1 pinned job
    obs = Observation(backlog=0, in_flight=6, current_replicas=2, ok=True)
    now = versioned.version_of(s)
    load = versioned.Load({"old1": (5, 2), now: (5, 2)})
    pinned.note(load, {"old1": pinned.Pinned(running=3), now: pinned.Pinned(running=1)}, now)
    assert versioned.discount(obs, load, s).in_flight == 5
    assert versioned.discount(obs, load, parse(spec())) == obs  # a rolling update: as is


def test_an_old_version_keeps_a_pod_per_jobs_per_replica_of_its_pinned_backlog() -> None:
    s = parse(spec(rollout={"strategy": "Versioned"}, scaling={"maxReplicas": 3}))
    per = s.scaling.jobs_per_replica
    assert pinned.wanted_replicas(pinned.Pinned(waiting=1), s, 0) == 1
    assert pinned.wanted_replicas(pinned.Pinned(waiting=1), s, 1) is None  # never scaled down
    assert pinned.wanted_replicas(pinned.Pinned(waiting=per * 10), s, 1) == 3  # maxReplicas
    assert pinned.wanted_replicas(pinned.Pinned(running=4), s, 0) is None  # none wait
