"""spec.fairness and weights set by hand: the operator writes a queue's weights when
spec.fairness changes (and when it starts), and leaves a hand edit alone until then, whatever
else of the spec changes or is re-checked periodically (docs/fairness.md, Who owns the
weights)."""

from __future__ import annotations

import asyncio

import pytest

import kubeq
from kubeq_operator.loop import RATE_SYNC_SECONDS
from kubeq_operator.spec import parse
from tests.operator.test_loop import Events, make_loop


@pytest.mark.redis
def test_weights_set_by_hand_are_kept_until_the_spec_changes(redis_url: str) -> None:
    base = {
        "redis": {"url": redis_url},
        "worker": {"image": "w:1", "tasks": "t"},
        "queues": ["a"],
        "rateLimits": {"a": "20/s"},  # re-checked every RATE_SYNC_SECONDS
    }
    first = parse({**base, "fairness": {"a": {"acme": 3}}})
    other = parse({**base, "rateLimits": {"a": "30/s"}, "fairness": {"a": {"acme": 3}}})
    changed = parse({**base, "fairness": {"a": {"acme": 2, "tiny": 1}}})
    app = kubeq.App(redis_url)
    queue = app.queue("a")
    events = Events()
    loop = make_loop(events, "weights")

    async def main() -> list[dict[str, float]]:
        seen = []
        try:
            await loop.sync_rate_limits(first, 1)
            seen.append(queue.weights())
            queue.set_weights({"acme": 5})  # `kubeq fair a acme=5`
            loop._rates_at -= RATE_SYNC_SECONDS + 1  # the periodic re-check is due
            await loop.sync_rate_limits(first, 1)
            seen.append(queue.weights())
            await loop.sync_rate_limits(other, 2)  # a change that leaves spec.fairness as is
            seen.append(queue.weights())
            await loop.sync_rate_limits(changed, 3)
            seen.append(queue.weights())
            return seen
        finally:
            await loop.close()

    try:
        applied, after_edit, after_other, after_change = asyncio.run(main())
    finally:
        app.close()
    assert applied == {"acme": 3.0}
    assert after_edit == {"acme": 5.0}, "the hand edit was overwritten without a spec change"
    assert after_other == {"acme": 5.0}, "a spec change that kept spec.fairness undid it"
    assert after_change == {"acme": 2.0, "tiny": 1.0}
    assert [m for _, r, m in events.posted if r == "RateLimits"] == [
        "a: at most 20/s; a: fairness weights acme=3",
        "a: at most 30/s",
        "a: at most 20/s; a: fairness weights acme=2, tiny=1",
    ]
