"""``make bench`` part: the cost of a chord of 100 in kubeq and in Celery, on one private Redis.

    .venv/bin/python bench/chord/run_chord.py --venvs ~/.cache/kubeq [--n 100] [--reps 5]

For each system: one worker process with 16 threads, a warm-up chord, then REPS chords of N
no-op members whose callback gets the list of results (chord_common.measure). Figures, the
median over the repetitions:

- Redis reads: the server's ``total_reads_processed`` over the chord (enqueue to callback),
  i.e. requests that reached Redis separately (a pipeline arriving at once counts once):
  the round trips of client and worker together. Also the commands executed.
- time from the first member's start to the callback's start, and from the enqueue call.

The benchmark's own timing writes (one per member and one for the callback), its BLPOP and
INFO are subtracted. Idle traffic (heartbeats, polls) is reported per second beside them: it
also runs during a chord. Writes bench/results/chord-<date>.json and prints a table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from kubeq.testing.server import RedisServer

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent


def peer_python(venvs: Path, system: str) -> str:
    if system == "kubeq":
        return sys.executable
    req = BENCH / "requirements" / f"{system}.txt"
    digest = hashlib.sha256(req.read_bytes()).hexdigest()[:12]
    py = venvs / f"bench-{system}-{digest}" / "bin" / "python"
    if not py.exists():
        raise SystemExit(f"no venv for {system} at {py.parent.parent}: run `make bench-venvs`")
    return str(py)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venvs", default="~/.cache/kubeq")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--out", default=str(BENCH / "results"))
    a = ap.parse_args()
    venvs = Path(a.venvs).expanduser()
    server = RedisServer(Path(tempfile.mkdtemp(prefix="kubeq-chord-")) / "redis")
    server.start()
    results: dict[str, Any] = {}
    try:
        for system in ("kubeq", "celery"):
            env = {**os.environ, "BENCH_REDIS_URL": server.url}
            out = subprocess.run(
                [
                    peer_python(venvs, system),
                    str(HERE / "chord_common.py"),
                    system,
                    str(a.n),
                    str(a.reps),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            if out.returncode != 0:
                raise SystemExit(f"{system}: {out.stderr[-2000:]}")
            results[system] = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        server.stop()
    print(f"\nchord of {a.n} (median of {a.reps}; one worker process, 16 threads each)")
    print(
        f"{'':<8} {'Redis reads':>12} {'commands':>9} {'1st start->callback':>20} "
        f"{'idle reads/s':>13}"
    )
    for system, r in results.items():
        print(
            f"{system:<8} {r['redis_reads']:>12.0f} {r['redis_commands']:>9.0f} "
            f"{r['first_start_to_callback_ms']:>17.1f} ms {r['idle_reads_per_s']:>13.1f}"
        )
    out_dir = Path(a.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"chord-{dt.date.today().isoformat()}.json"
    path.write_text(json.dumps({"n": a.n, "reps": a.reps, "systems": results}, indent=2) + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
