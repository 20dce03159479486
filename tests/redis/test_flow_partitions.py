"""On a partitioned queue every call of a debounce or singleton key meets its key in one
partition: a concurrency limit keyed by the task or by the flow's own key routes there too;
a limit key (or a partition_key) that would send the key's calls elsewhere is refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import kubeq


@pytest.fixture
def papp(redis_url: str) -> Iterator[kubeq.App]:
    application = kubeq.App(redis_url, partitions={"pq": 4})
    yield application
    application.close()


def test_a_limit_key_other_than_the_key_is_refused(papp: kubeq.App) -> None:
    @papp.task(
        queue="pq",
        singleton="skip",
        singleton_key=lambda account, tenant: account,
        concurrency_limit=2,
        limit_key=lambda account, tenant: tenant,
    )
    def sync(account: str, tenant: str) -> None: ...

    with pytest.raises(ValueError, match="its limit_key 'tenant-0' is not its skip key 'acct'"):
        for i in range(8):
            sync.delay("acct", f"tenant-{i}")
    assert papp.queue("pq").stats().backlog == 0  # nothing was written


def test_a_limit_on_the_key_or_the_task_keeps_the_key_in_one_partition(papp: kubeq.App) -> None:
    @papp.task(
        queue="pq",
        debounce=60.0,
        debounce_key=lambda doc, v: doc,
        concurrency_limit=1,
        limit_key=lambda doc, v: doc,
    )
    def reindex(doc: str, v: int) -> None: ...

    @papp.task(queue="pq", singleton="replace", concurrency_limit=3)
    def refresh(account: str) -> None: ...

    for task, calls in ((reindex, [("doc", v) for v in range(8)]), (refresh, [("a",)] * 8)):
        jobs = [task.delay(*args) for args in calls]
        assert {j.id for j in jobs} == {jobs[0].id}, f"{task.name}: {jobs}"
        assert [j.created for j in jobs] == [True] + [False] * 7


def test_a_partition_key_of_its_own_is_refused(papp: kubeq.App) -> None:
    @papp.task(queue="pq", singleton="skip")
    def single() -> None: ...

    with pytest.raises(ValueError, match="partition_key cannot be given"):
        for i in range(8):
            single.apply_async(partition_key=f"p{i}")
    assert papp.queue("pq").stats().backlog == 0
