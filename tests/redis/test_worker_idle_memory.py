"""An idle `kubeq worker` hands the heap it no longer uses back to the system
(kubeq.worker.memtrim): after the same start-up and the same burst of jobs, a worker that
trims holds megabytes less anonymous memory, once idle, than one started with
``KUBEQ_MALLOC_TRIM=0``. Both start as in an image whose Python files were not compiled
ahead (``PYTHONDONTWRITEBYTECODE`` and an empty bytecode cache, as a read-only root
filesystem without compiled files gives): compiling every module at start-up is what leaves
the most freed heap behind (with compiled files, a burst's leftovers are under a megabyte).
Read from ``/proc/PID/smaps_rollup`` as ``ps`` and the kubelet would.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import qtasks

import kubeq
from kubeq.worker.memtrim import ENV
from tests.redis.helpers import wait_until
from tests.redis.workers import StartWorker

JOBS = 3_000
LESS_KB = 4_096
"""How much less the trimming worker must hold: a third of what the trim gave here (12 MB),
well above the noise of two processes' heaps."""


def anonymous_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Anonymous:"):
            return int(line.split()[1])
    raise AssertionError(f"no Anonymous line for {pid}")


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_an_idle_worker_returns_the_heap_its_start_left_behind(
    start_worker: StartWorker, app: kubeq.App, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPYCACHEPREFIX", str(tmp_path / "no-bytecode"))
    trims = start_worker("--queue", "trims", "--concurrency", "4")
    monkeypatch.setenv(ENV, "0")
    keeps = start_worker("--queue", "keeps", "--concurrency", "4")
    monkeypatch.delenv(ENV)
    assert ENV not in os.environ
    for q in ("trims", "keeps"):
        jobs = app.queue(q).enqueue_many([qtasks.add.s(i, i) for i in range(JOBS)])
        assert [j.result(timeout=180) for j in jobs[-3:]] == [2 * i for i in range(JOBS - 3, JOBS)]

    def trimmed() -> bool:
        return anonymous_kb(trims.pid) + LESS_KB <= anonymous_kb(keeps.pid)

    try:
        wait_until(trimmed, timeout=60, what="the trimming worker to hold less")
    except pytest.fail.Exception as exc:
        held = (anonymous_kb(trims.pid), anonymous_kb(keeps.pid))
        raise AssertionError(f"{exc}: {held[0]} kB trimming, {held[1]} kB not") from exc
