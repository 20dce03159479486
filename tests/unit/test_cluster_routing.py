"""Redis Cluster without a cluster: the URL, the fence key, and how a worker's fetch and free
slots are split by hash slot (``fetchrouter``). The real cluster:
tests/redis/test_redis_cluster.py.
"""

from __future__ import annotations

import pytest

from kubeq.store.cluster import is_outage, slot_groups, slot_of
from kubeq.store.keys import QueueKeys, fence_of
from kubeq.store.scripts import LUA, fenced
from kubeq.store.urls import parse_cluster_url
from kubeq.store.wire import FETCH_FIELDS_PER_JOB
from kubeq.worker.fetch import FetchRouter
from kubeq_operator.spec import SpecError, parse


def test_a_cluster_url_names_its_seed_nodes() -> None:
    t = parse_cluster_url("redis+cluster://u:pw@n1:7000,n2,[::1]:7002?ssl_ca_certs=/ca")
    assert t is not None
    assert t.nodes == [("n1", 7000), ("n2", 6379), ("::1", 7002)]
    assert (t.username, t.password, t.ssl, t.options) == ("u", "pw", False, {"ssl_ca_certs": "/ca"})
    assert parse_cluster_url("rediss+cluster://n1:7000").ssl  # type: ignore[union-attr]
    assert parse_cluster_url("redis://localhost:6379/0") is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://n1:x", "bad cluster node address"),
        ("redis+cluster://n1:7000/3", "only database 0"),
    ],
)
def test_a_malformed_cluster_url_says_what_to_fix(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_cluster_url(url)
    spec = {"redis": {"url": url}, "worker": {"image": "i", "tasks": "t"}}
    with pytest.raises(SpecError, match=r"spec\.redis\.url"):
        parse(spec)


def test_a_taskqueue_may_point_at_a_cluster_but_not_carry_its_password() -> None:
    ok = {
        "redis": {"url": "redis+cluster://n1:7000,n2:7000"},
        "worker": {"image": "i", "tasks": "t"},
    }
    assert parse(ok).redis.url.startswith("redis+cluster://")
    bad = {"redis": {"url": "redis+cluster://:pw@n1:7000"}, "worker": {"image": "i", "tasks": "t"}}
    with pytest.raises(SpecError, match="secretRef"):
        parse(bad)


def test_every_key_of_a_queue_and_its_fence_share_one_slot() -> None:
    q = QueueKeys.of("orders")
    assert q.fence == fence_of(q.ready) == "kubeq:{orders}:fence"
    every = [*q.script_keys, q.fence, q.job("j1"), q.done("j1"), q.leases, q.slots("k:x")]
    assert len({slot_of(k) for k in every}) == 1
    assert fenced(q.script_keys) == [*q.script_keys, q.fence]
    with pytest.raises(ValueError, match="hash tag"):
        fence_of("kubeq:queues")


def test_no_script_reads_beyond_its_queue_keys_so_the_fence_is_never_touched() -> None:
    for name, lua in LUA.items():
        assert "#KEYS" not in lua.script, name  # the appended fence changes no script's view


def test_queues_are_grouped_by_slot_in_their_given_order() -> None:
    keys = [QueueKeys.of(n).base for n in ("a", "b", "c")] + ["kubeq:{a}:other"]
    groups = slot_groups(keys)
    assert sorted(i for g in groups for i in g) == [0, 1, 2, 3]
    assert [0, 3] in groups  # same tag, same slot, one call


def _router(n: int, cluster: bool = True) -> FetchRouter:
    return FetchRouter([QueueKeys.of(f"q{i}") for i in range(n)], cluster)


def test_one_redis_gets_one_fetch_over_all_queues() -> None:
    r = _router(5, cluster=False)
    calls = r.calls(LUA["fetch"], "w", 7, 30000, 0, 15000)
    assert len(calls) == 1 and calls[0][2][1] == 7 and len(calls[0][1]) == 5 * 8


def test_free_slots_are_shared_and_the_remainder_goes_round() -> None:
    r = _router(4)
    assert len(r.groups) == 4
    seen = [r.shares(2) for _ in range(4)]
    assert all(sum(s) == 2 for s in seen)
    assert [sum(col) for col in zip(*seen, strict=True)] == [2, 2, 2, 2]  # no group starves
    assert r.shares(9) in ([3, 2, 2, 2], [2, 3, 2, 2], [2, 2, 3, 2], [2, 2, 2, 3])


def test_shares_follow_the_groups_that_had_jobs_ready() -> None:
    r = _router(3)
    empty = [b"0", b"-1"]
    busy = [b"5", b"-1"]
    reply, error = r.merge([empty, busy, empty])
    assert error is None and reply.remaining == 5 and reply.jobs == []
    assert r.shares(4) == [0, 4, 0]
    r.merge([empty, empty, empty])
    assert sum(r.shares(3)) == 3 and all(s == 1 for s in r.shares(3))  # none known: all


def test_a_failed_group_keeps_the_jobs_the_others_leased() -> None:
    r = _router(2)
    job = [0, b"id1", b"7", b'{"task":"t"}', 0, 123, 1]
    assert len(job) == FETCH_FIELDS_PER_JOB
    down = ConnectionError("node down")
    reply, error = r.merge([[b"0", b"250", *job], down])
    assert error is down and [j.id for j in reply.jobs] == ["id1"]
    assert reply.jobs[0].queue is r.groups[0][0] and reply.wait_ms == 250
    assert r.wake_keys() == [[g[0].wake] for g in r.groups]


def test_cluster_moves_are_outages_and_script_errors_are_not() -> None:
    import redis.exceptions as e

    for exc in (
        e.TryAgainError(),
        e.MovedError("1 h:1"),
        e.ClusterDownError("CLUSTERDOWN"),
        e.ConnectionError(),
    ):
        assert is_outage(exc)
    assert not is_outage(e.ResponseError("kubeq: ... holds a string, not a sorted set"))
