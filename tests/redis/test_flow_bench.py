"""bench/flow_patterns.py at a small scale (its promises, not its speed): debounce runs each
key once with its last arguments; singleton runs of a key never overlap, a SIGKILLed worker
included; every batch item is done once and only the killed batch starts twice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "flow_patterns.py"


@pytest.mark.timeout(300)
def test_the_flow_bench_keeps_its_promises(tmp_path: Path) -> None:
    out = tmp_path / "flow.json"
    args = ["--calls", "300", "--keys", "10", "--callers", "5"]
    args += ["--items-per-second", "500", "--seconds", "1", "--out", str(out)]
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=280,
    )
    report = json.loads(out.read_text())
    assert done.returncode == 0, (done.stderr[-2000:], report)
    assert report["debounce"]["keys_run_once_with_last_arguments"] == 10
    assert report["singleton"]["overlapping_runs_of_a_key"] == 0
    assert report["batches"]["batches_started_twice"] == 1
    assert report["batches"]["items_done_twice"] == 0
