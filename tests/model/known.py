"""Defects the intersections machine is known to meet until their fixes merge.

Each flag, while True, makes the machine (intersections.py, ledger.py) tolerate exactly one
known wrong behaviour, named in its docstring; everything else is still checked. Set a flag
to False once the fix is in: the machine then demands the right behaviour, and the pinned
reproduction in test_found_by_the_model.py turns from xfail to a pass.
"""

from __future__ import annotations

KNOWN_ITEM_4 = False
"""A bulk enqueue resent after a lost connection re-creates jobs of that batch that had
already ended (and they run again). While True, a job of a resent batch may come back once
after its end, and end a second time."""

KNOWN_ITEM_9 = False
"""An abort is missed when the job's result TTL runs out before the worker's next heartbeat
reads it: the run goes on. While True, a run of an aborted job whose hash has expired may
be reported lost instead of aborted by the heartbeat."""

KNOWN_ITEM_10 = False
"""A chord whose callback is refused at enqueue leaves its members enqueued, although the
error says nothing was. While True, those members join the ledger as jobs like any other."""

KNOWN_ITEM_11 = False
"""A chord callback gets None for a member that finished but whose result expired before
the callback started. While True, such a None is tolerated for an expired member."""

KNOWN_ITEM_12 = False
"""Purging a queue deletes waiting parents without ending them for the hand-off: their
deferred children stay deferred for ever. While True, the final drain tolerates a deferred
child whose parent was purged."""

KNOWN_ITEM_13 = False
"""A parent whose result TTL runs out before its hand-off (a worker died between ack and
hand-off, the sweep comes after the expiry): its callback is never enqueued and its children
stay deferred. While True, the final drain tolerates a lost follow-up of such a parent."""
