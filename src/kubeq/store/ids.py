"""Job ids: unique, and sorted by creation time within a process.

Jobs of one priority that became ready in the same millisecond share a ready-set score and
Redis orders them by member, so time-ordered ids keep them first-in, first-out.
"""

from __future__ import annotations

import itertools
import os
import random
import time

_sequence = itertools.count()
_random = random.Random()  # seeded from os.urandom; reseeded in a forked child below
os.register_at_fork(after_in_child=_random.seed)

_ID = "%014x%04x%010x"
"""A job id: µs since the epoch, a 16-bit sequence, 40 random bits (%-formatting: cheaper
than an f-string on this path)."""


def new_job_id() -> str:
    """A unique id that sorts by creation time within this process.

    Jobs of one priority that became ready in the same millisecond share a ready-set score
    and Redis orders them by member, so time-ordered ids keep them first-in, first-out. The
    40 random bits come from a per-process generator seeded by the OS (no system call per
    id), reseeded in a forked child.
    """
    return _ID % (
        time.time_ns() // 1000,
        next(_sequence) & 0xFFFF,
        _random.getrandbits(40),
    )


class PlanIds:
    """The ids of the jobs one plan creates, in ``new_job_id``'s format and order, for less: the
    time and the 40 random bits are drawn once per 65,536 jobs (the time then moves on by at
    least 1 µs, so the ids still sort in call order) and only the 16-bit sequence is formatted
    per job."""

    __slots__ = ("head", "n", "tail", "time")

    def __init__(self) -> None:
        self.n = 1 << 16
        self.time = 0
        self.head = self.tail = ""

    def next(self) -> str:
        n = self.n
        if n < 1 << 16:
            self.n = n + 1
            return "%s%04x%s" % (self.head, n, self.tail)  # noqa: UP031
        self.time = max(time.time_ns() // 1000, self.time + 1)
        first = _ID % (self.time, 0, _random.getrandbits(40))
        self.head, self.tail, self.n = first[:14], first[18:], 1
        return first
