"""``cancel_until_done``: tasks that swallow their cancellation are cancelled again until they
end, within the bound when one is given."""

from __future__ import annotations

import asyncio

from kubeq.cancelling import cancel_until_done


async def _swallows(times: int, ended: list[str]) -> None:
    """A loop whose first ``times`` cancellations are lost, as a library may lose them (once
    ``ended`` holds "release", the next one ends it)."""
    lost = 0
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            if lost == times or "release" in ended:
                ended.append("ended")
                raise
            lost += 1


def test_a_task_that_swallows_cancellations_is_cancelled_until_it_ends() -> None:
    async def main() -> tuple[list[asyncio.Task[None]], list[str], bool]:
        ended: list[str] = []
        task = asyncio.create_task(_swallows(3, ended))
        await asyncio.sleep(0)
        left = await cancel_until_done([task], recheck=0.01)
        return left, ended, task.cancelled()

    left, ended, cancelled = asyncio.run(main())
    assert left == []
    assert ended == ["ended"]
    assert cancelled


def test_a_task_that_never_ends_is_given_up_after_the_bound_and_returned() -> None:
    async def main() -> tuple[list[str], list[str], list[str]]:
        ended: list[str] = []
        stuck = asyncio.create_task(_swallows(10**9, ended), name="stuck")
        quick = asyncio.create_task(asyncio.sleep(3600), name="quick")
        await asyncio.sleep(0)
        left = await cancel_until_done([stuck, quick], recheck=0.01, bound=0.1)
        names = [t.get_name() for t in left]
        done = [t.get_name() for t in (stuck, quick) if t.done()]
        swallowed = list(ended)
        ended.append("release")  # (the test's own end: the next cancellation ends it)
        stuck.cancel()
        await asyncio.wait([stuck])
        return names, done, swallowed

    names, done, ended = asyncio.run(main())
    assert names == ["stuck"]
    assert done == ["quick"]
    assert ended == []


def test_tasks_already_done_are_left_as_they_are() -> None:
    async def main() -> tuple[list[asyncio.Task[int]], int]:
        finished = asyncio.create_task(asyncio.sleep(0, result=7))
        await finished
        left = await cancel_until_done([finished], recheck=0.01, bound=0.1)
        return left, finished.result()

    assert asyncio.run(main()) == ([], 7)
