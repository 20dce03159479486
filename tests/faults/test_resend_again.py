"""An enqueue whose connection is cut, and whose first new send meets a Redis that cannot be
reached for a moment (a proxy or a failover dropping every connection at once): kubeq sends
the same calls again after a short delay, and again, until one send gets its replies. Every
job is written once and every handle says its call created it. Sync (a streamed bulk
enqueue) and asyncio (one pipelined send).

The producer reaches Redis only through the proxy. The proxy first drops what the producer
sends (its calls go nowhere), then is switched off: every connection is closed and new ones
are refused, so the producer's next send fails too. It is switched on again only once the
producer has said it will send again, so the test does not depend on how fast either side
runs.
"""

from __future__ import annotations

import asyncio
import logging

import ftasks
import pytest
import redis

import kubeq
from tests.faults.fleet import wait_until
from tests.faults.test_bulk_resend import Producer
from tests.support.toxiproxy import Proxy

N = 3_000
"""Two of the bulk enqueue's batches."""


class AsyncProducer(Producer):
    """``Producer`` through the asyncio client: ``aenqueue_many`` on a loop of its own."""

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.warm.set()
            self.app.close()

    async def _run(self) -> None:
        q = self.app.queue(self.queue)
        await q.aenqueue_many([ftasks.work.s("warm").set(job_id="warm", delay=3600)])
        self.warm.set()
        await asyncio.to_thread(self.go.wait, 60)
        self.jobs = await q.aenqueue_many(self.calls())


@pytest.mark.parametrize("kind", [Producer, AsyncProducer], ids=["sync", "asyncio"])
def test_an_enqueue_whose_new_send_is_refused_sends_again_and_writes_each_job_once(
    kind: type[Producer],
    app: kubeq.App,
    r: redis.Redis,
    proxy: Proxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="kubeq.store.resend")
    ids = [f"a-{n}" for n in range(N)]
    producer = kind(proxy.url, "again", lambda: [ftasks.work.s(i).set(job_id=i) for i in ids])
    producer.start()
    assert producer.warm.wait(60) and producer.error is None, producer.error
    proxy.add("timeout", "upstream", timeout=0)  # the calls go nowhere
    producer.go.set()
    proxy.set_enabled(False)  # every connection closed, new ones refused

    def sends_again() -> bool:
        said = any("sending the same calls again" in m for m in caplog.messages)
        return said or not producer.is_alive()

    wait_until(sends_again, 60, "the producer to say it sends again")
    proxy.clear()
    proxy.set_enabled(True)
    producer.join(120)
    assert producer.error is None, f"{producer.error!r}: {producer.error}"
    assert not producer.is_alive()
    assert [j.id for j in producer.jobs] == ids
    assert all(j.created for j in producer.jobs), "a handle says its call did not create it"
    jobs = sum(1 for i in ids if r.exists(f"kubeq:{{again}}:job:{i}"))
    assert jobs == N, f"{jobs} of {N} jobs written"
    assert app.queue("again").stats().backlog == N, "a job queued twice, or not at all"
