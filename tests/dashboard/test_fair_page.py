"""The queue page of a fair queue: its keys that waited longest, with backlog and weight,
and its keyed jobs listed with their own priority (against a real Redis, in process)."""

from __future__ import annotations

from starlette.testclient import TestClient

import kubeq
from kubeq.dashboard import Config, create_app


def test_the_queue_page_shows_the_fairness_keys(redis_url: str) -> None:
    app = kubeq.App(redis_url)
    q = app.queue("fq")
    q.set_weights({"acme": 3})
    app.enqueue_many(
        [q.prepare("t.x", i).set(fair_key="acme", priority=7) for i in range(3)]
        + [q.prepare("t.x", 9).set(fair_key="tiny")]
    )
    web = create_app(Config(redis_url=redis_url, cluster=False, read_only=True))
    with TestClient(web, base_url="http://dash.test") as c:
        page = c.get("/queues/fq").text
    assert 'id="fair-keys"' in page and "2 keys with ready jobs" in page
    row = page.split("<td>acme</td>")[1].split("</tr>")[0]
    assert '<td class="n">3</td>' in row and '<td class="n">3</td></tr>' in row + "</tr>"
    waiting = page.split('id="waiting"')[1]
    assert waiting.count('<td class="n">7</td>') == 3  # their priority, not a shifted band
    app.close()
