"""The lists the tasks write for the harness (the drain's start and end marks, the latency
samples), and how the harness waits for them without polling.

Each item pushed also pushes a token to the list's wake-up list, in the same round trip;
``wait_list`` blocks on that with ``BLPOP`` and looks at the list's length after each token.
A poll of the length every 2 ms woke the harness 500 times a second beside the worker and
Redis on 2 cores, and slowed the fastest drains with it; the rates come from the marks' own
clocks, not from when the harness notices them.
"""

from __future__ import annotations

import time

import redis

WOKEN = ":woken"
"""The suffix of a list's wake-up list."""


def push(client: redis.Redis, key: str, item: str) -> None:
    """Append ``item`` to ``key`` and a token to its wake-up list, in one round trip."""
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, item)
    pipe.rpush(key + WOKEN, "1")
    pipe.execute()


def wait_list(r: redis.Redis, key: str, length: int, timeout: float) -> bool:
    """Whether the list ``key`` holds ``length`` items within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if int(r.llen(key)) >= length:  # type: ignore[arg-type]
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r.blpop([key + WOKEN], timeout=min(1.0, max(0.01, left)))
