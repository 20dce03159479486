"""Job ids: unique, short, and sorted by creation time within a process.

Jobs of one priority that became ready in the same millisecond share a ready-set score and
Redis orders them by member, so time-ordered ids keep them first-in, first-out.

An id is 19 characters of ``ALPHABET`` (64 characters in ASCII order, so the ids sort as the
numbers they encode), 6 bits each: 9 for the microseconds since the epoch (54 bits, until
2541), 2 for a 12-bit sequence and 8 for 48 random bits. 19 characters where 28 hex ones
held the same: the job key's name then fits a smaller allocation in Redis, and the search
index stores a bare id, whose time ``created_ms`` reads back (``jobindex``, ``_prelude.lua``),
instead of ``<ms>:<id>``.
"""

from __future__ import annotations

import base64
import os
import random
import time

ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
"""The id's 64 characters, in ASCII order: a larger number is a later string. All are allowed
in a job id (``keys.validate_job_id``), a URL and a Redis key; an id never starts with ``-``
(its first character is the top of the time, not 0 since 1978)."""

LENGTH = 19
TIME_CHARS = 9
_B64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_TO_ID = bytes.maketrans(_B64, ALPHABET.encode())
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_CHARS = frozenset(ALPHABET)

_random = random.Random()  # seeded from os.urandom; reseeded in a forked child below
os.register_at_fork(after_in_child=_random.seed)
_last = 0
"""The last (µs << 12 | sequence) given out by this process: the next is larger."""


def _encode(stamp: int, rand: int) -> str:
    """The 19 characters of (µs << 12 | sequence, 48 random bits): 120 bits in base64 (20
    characters, each field on whole characters, the first always 0), mapped to ALPHABET."""
    value = (stamp << 48) | rand
    return base64.b64encode(value.to_bytes(15, "big")).translate(_TO_ID)[1:].decode()


def new_job_id() -> str:
    """A unique id that sorts by creation time within this process: the time and sequence
    are one number that grows at every id (the sequence counts ids made in one microsecond).
    The 48 random bits come from a per-process generator seeded by the OS (no system call per
    id), reseeded in a forked child.
    """
    global _last
    _last = stamp = max((time.time_ns() // 1000) << 12, _last + 1)
    return _encode(stamp, _random.getrandbits(48))


def created_ms(job_id: str) -> int | None:
    """When an id in ``new_job_id``'s format was made (ms since the epoch, by the clock of the
    process that made it); None for any other id."""
    if len(job_id) != LENGTH or not _CHARS.issuperset(job_id):
        return None
    us = 0
    for c in job_id[:TIME_CHARS]:
        us = us * 64 + _VALUE[c]
    return us // 1000


class PlanIds:
    """The ids of the jobs one plan creates, in ``new_job_id``'s format and order, for less: a
    plan takes a whole microsecond's 4,096 sequence numbers at a time (the time and random bits
    drawn once per 4,096 jobs) and adds only the sequence's two characters per job."""

    __slots__ = ("head", "n", "tail")

    def __init__(self) -> None:
        self.n = 1 << 12
        self.head = self.tail = ""

    def next(self) -> str:
        global _last
        n = self.n
        if n < 1 << 12:
            self.n = n + 1
            return self.head + ALPHABET[n >> 6] + ALPHABET[n & 63] + self.tail
        stamp = max(time.time_ns() // 1000, (_last >> 12) + 1) << 12
        _last = stamp | 0xFFF
        first = _encode(stamp, _random.getrandbits(48))
        self.head, self.tail, self.n = first[:TIME_CHARS], first[TIME_CHARS + 2 :], 1
        return first
