"""``python bench/systems/cli.py SYSTEM SCENARIO [options]``: one scenario, one JSON line.

The tasks live in ``SYSTEM_bench.py`` (never in ``__main__``, so workers can import them);
the scenarios in ``common.py``, whose docstring says what each measures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    URL_ENV,
    System,
    scenario_curve,
    scenario_drain,
    scenario_enqueue,
    scenario_latency,
    scenario_memory,
    url,
)


def main() -> None:
    ap = argparse.ArgumentParser(description="one benchmark scenario of one system")
    ap.add_argument("system", help="kubeq, rq, celery, arq or dramatiq")
    ap.add_argument(
        "scenario", choices=["enqueue", "drain", "latency", "memory", "curve", "settings"]
    )
    ap.add_argument("--redis-url", default=url())
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--mode", choices=["single", "bulk", "async"], default="single")
    ap.add_argument("--settings", choices=["default", "best", "limited"], default="default")
    ap.add_argument("--cap", type=float, default=60.0, help="drain: seconds before giving up")
    ap.add_argument("--log", default=None, help="the worker's log file")
    ap.add_argument("--procs", type=int, default=1, help="drain: worker processes")
    ap.add_argument("--finished", type=int, default=5000, help="memory: jobs drained")
    ap.add_argument("--window", type=float, default=5.0, help="curve: seconds of draining")
    a = ap.parse_args()
    os.environ[URL_ENV] = a.redis_url  # before the tasks module creates its clients
    system_cls: type[System] = importlib.import_module(f"{a.system}_bench").SYSTEM
    sysm = system_cls(a.redis_url)
    if a.scenario == "settings":
        print(
            json.dumps(
                {"system": sysm.name, "settings": sysm.settings_doc, "bulk_api": sysm.bulk_api}
            )
        )
        return
    sysm.r.flushall()
    sysm.setup()
    log = Path(a.log or f"/tmp/bench-{sysm.name}-worker.log")
    try:
        if a.scenario == "enqueue":
            out = scenario_enqueue(sysm, a.mode, a.n)
            out["mode"] = a.mode
        elif a.scenario == "drain":
            out = scenario_drain(sysm, a.settings, a.n, a.cap, log, a.procs)
            out["settings_name"] = a.settings
        elif a.scenario == "memory":
            out = scenario_memory(sysm, a.n, a.finished, a.cap, log)
        elif a.scenario == "curve":
            out = scenario_curve(sysm, a.n, a.window, log)
        else:
            out = scenario_latency(sysm, a.n, log)
    finally:
        sysm.close()
        sysm.r.flushall()
    out.update(system=sysm.name, scenario=a.scenario, n=a.n)
    print(json.dumps(out), flush=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
