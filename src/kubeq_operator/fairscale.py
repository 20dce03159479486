"""The operator's view of fair queues: the keys that waited longest, as metrics and as the
worst key the scaling policy may size for (``spec.scaling.waitOfWorstKey``).

Only queues whose stats say some fairness key has ready jobs are read (one ``fairstats.lua``
call each, pipelined), so a TaskQueue without fair keys costs nothing more per poll. The
exported keys are the ``fairTopKeys`` whose next job waited longest; a key that leaves the
top has its series removed, so the cardinality stays at most that many per queue.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import replace
from typing import Any

from redis.exceptions import RedisError

from kubeq.store.fairness import FairStats, read_fair_stats_async
from kubeq.store.stats import QueueStats
from kubeq_operator import metrics
from kubeq_operator.policy import Observation
from kubeq_operator.redis_source import RedisDown
from kubeq_operator.spec import TaskQueueSpec

log = logging.getLogger(__name__)


async def read_keys(client: Any, stats: list[QueueStats], prefix: str, top: int) -> list[FairStats]:
    """The by-key numbers of the queues that have fairness keys with ready jobs."""
    keyed = [s.queue for s in stats if s.fair_keys > 0]
    if not keyed or top <= 0:
        return []
    return await read_fair_stats_async(client, keyed, prefix, top=top)


def worst(found: list[FairStats]) -> tuple[str | None, float]:
    """The key whose next job waited longest over every queue, and that wait."""
    best: tuple[str | None, float] = (None, 0.0)
    for fs in found:
        w = fs.worst
        if w is not None and (best[0] is None or w.wait > best[1]):
            best = (w.key, w.wait)
    return best


def publish(
    namespace: str, taskqueue: str, stats: list[QueueStats], found: list[FairStats]
) -> None:
    """Set the fair-key gauges of each queue; drop the series of keys no longer shown."""
    by_queue = {fs.queue: fs for fs in found}
    for s in stats:
        labels = (namespace, taskqueue, s.queue)
        metrics.fair_keys.labels(*labels).set(s.fair_keys)
        fs = by_queue.get(s.queue)
        now = {k.key: k.wait for k in fs.keys} if fs is not None else {}
        for key in metrics.fair_shown.get(labels, set()) - now.keys():
            with contextlib.suppress(KeyError):
                metrics.fair_key_wait.remove(*labels, key)
        for key, wait in now.items():
            metrics.fair_key_wait.labels(*labels, key).set(wait)
        metrics.fair_shown[labels] = set(now)


async def observe_keys(
    loop: Any, spec: TaskQueueSpec, stats: list[QueueStats] | None, obs: Observation
) -> Observation:
    """``obs`` with the worst key, and the metrics published, for one TaskQueue's loop (its
    ``source``, ``namespace`` and ``name``); a failed read changes neither (it is logged)."""
    if stats is None:
        return obs
    try:
        client = await loop.source.client(spec)
        top = spec.scaling.fair_top_keys or int(spec.scaling.wait_of_worst_key)
        found = await read_keys(client, stats, spec.redis.prefix, top)
    except (RedisError, OSError, RedisDown) as e:
        log.warning("fairness keys of %s/%s not read: %s", loop.namespace, loop.name, e)
        return obs
    publish(loop.namespace, loop.name, stats, found)
    key, wait = worst(found)
    return replace(obs, worst_key=key, worst_key_wait=wait)
