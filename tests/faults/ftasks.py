"""Tasks the fault tier runs in real `kubeq worker` processes (imported as ``ftasks``).

Each execution is counted OUTSIDE Redis: it appends a ``start`` line when it begins and an
``end`` line when its body has run, to a file of its own process under
``$KUBEQ_FAULTS_LEDGER``. One ``os.write`` of a short line to an ``O_APPEND`` file is atomic,
so the threads of one worker never interleave lines; files of killed workers keep what they
wrote. Tasks never talk to Redis themselves: a toxic on the worker's proxy must affect only
kubeq's own traffic.
"""

from __future__ import annotations

import os
import time

import kubeq

app = kubeq.App()


def _record(event: str, job: str) -> None:
    ledger = os.environ["KUBEQ_FAULTS_LEDGER"]
    line = f"{event} {job} {os.getpid()} {time.time():.3f}\n".encode()
    fd = os.open(os.path.join(ledger, f"{os.getpid()}.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def expected(job: str, pad: int = 0) -> str:
    """What ``work(job, ...)`` returns: a test checks each job finished with exactly this."""
    return f"done:{job}:{pad}"


@app.task(max_attempts=1)
def work(job: str, seconds: float = 0.0, pad: str = "") -> str:
    """Record the start, sleep, record the end; ``pad`` makes the payload (and the fetch
    reply) as large as a scenario needs, and its length comes back in the result."""
    _record("start", job)
    if seconds:
        time.sleep(seconds)
    _record("end", job)
    return expected(job, len(pad))


@app.task(batch=kubeq.Batch(max_size=500, max_wait=1.0), max_attempts=1)
def work_batch(items: list[str]) -> list[str]:
    """A batch task: each item's start and end recorded as ``work`` records a job's; each
    item's result is ``expected(item)``."""
    for item in items:
        _record("start", item)
    for item in items:
        _record("end", item)
    return [expected(item) for item in items]
