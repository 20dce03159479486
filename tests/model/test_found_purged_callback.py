"""A case the intersections machine found (run with the batch steps of batchitems.py), pinned
as a plain test: a job with an on_success callback finishes; the sweep hands its end off
(the callback is enqueued) while the worker's own hand-off of it is still pending; the queue
is purged (the waiting callback is deleted); the worker's hand-off then enqueues the callback
again and it runs. A purged job must stay purged: every hand-off of one end of the parent
sends the same token, so the receipt the purge leaves answers the late one."""

from __future__ import annotations

from kubeq.outcomes import Settlement
from tests.model.intersections import Intersections


def test_a_purged_callback_is_not_enqueued_again_by_its_parents_hand_off(redis_url: str) -> None:
    Intersections.url = redis_url
    m = Intersections()
    try:
        m.enqueue("plain", "q", "a", False, "q", None)  # on_success: a callback on q
        m.fetch("w1")
        ((name, d),) = m._runs()
        m.fleet.end_run(name, d, Settlement.finished(b"1"))
        m.jobs_move_as_jobs_may()
        m.sweep("w1")  # the callback is enqueued; the worker's hand-off is still pending
        m.jobs_move_as_jobs_may()
        m.purge("q")  # the waiting callback is deleted
        m.jobs_move_as_jobs_may()
        m.drain()  # the worker's hand-off runs: the callback must not come back
    finally:
        m.teardown()
