"""The operator-scale and operator-failover results files, and the tables made from them alone.

``operator_many_taskqueues.py`` appends each run with ``append``; tests/operator/test_ha.py
appends its failover timeline with ``append(..., bench=FAILOVER_BENCH)`` when
``KUBEQ_FAILOVER_RESULTS`` names a file. ``render_docs`` writes the table into every document
holding a marker that names the file::

    <!-- operator-scale results=bench/results/operator-scale-DATE.json -->
    ...generated, never edited by hand...
    <!-- /operator-scale -->
    <!-- operator-failover results=bench/results/operator-failover-DATE.json -->
    ...
    <!-- /operator-failover -->

Standard library only.
"""

from __future__ import annotations

import json
import os
import platform
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "bench" / "README.md", ROOT / "docs" / "scaling.md"]
MARKER = re.compile(
    r"<!-- operator-scale results=(?P<path>\S+) -->\n.*?<!-- /operator-scale -->", re.S
)
FAILOVER_MARKER = re.compile(
    r"<!-- operator-failover results=(?P<path>\S+) -->\n.*?<!-- /operator-failover -->", re.S
)
FAILOVER_BENCH = "tests/operator/test_ha.py"


def append(
    path: str, run: dict[str, Any], bench: str = "bench/operator_many_taskqueues.py"
) -> None:
    """Add ``run`` to the results file (created with the machine's description)."""
    p = ROOT / path if not Path(path).is_absolute() else Path(path)
    doc: dict[str, Any]
    if p.exists():
        doc = json.loads(p.read_text())
    else:
        doc = {
            "bench": bench,
            "machine": {
                "cores": os.cpu_count(),
                "cpu": _cpu_model(),
                "python": platform.python_version(),
                "shared": "2 cores shared with the local control plane and other work; the "
                "1-minute load average at the start and end of each window is in the run",
            },
            "runs": [],
        }
    doc["runs"].append(run)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1) + "\n")


def _cpu_model() -> str:
    try:
        for ln in Path("/proc/cpuinfo").read_text().splitlines():
            if ln.startswith("model name"):
                return ln.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _s(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f} s"


def table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['shared']}. One operator per run, "
        "serving one namespace; pollSeconds 1; API requests are every client's (the idle "
        "control plane's own rate is the last column); Redis round trips are the requests or "
        "pipelines that arrived (`total_reads_processed`); backlog -> replicas p50/p99 are over "
        "the fed TaskQueues raised by 10 s after the window (raised/fed says how many were).",
        "",
        "| code | TaskQueues | warm-up | operator CPU (% of a core) | RSS | API req/s "
        "| status patches/s | Redis cmds/s | Redis round trips/s | backlog -> replicas "
        "p50 / p99 (raised/fed) | load 1 min | idle control plane API req/s |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for r in doc["runs"]:
        idle = r.get("idle_control_plane", {}).get("api_requests_per_s", "n/a")
        lines.append(
            f"| {r['label']} | {r['taskqueues']:,} | {r['warmup_s']:.0f} s "
            f"({r['warmed_up']}) | {r['operator_cpu_percent_of_one_core']} % "
            f"| {r['operator_rss_mb']:.0f} MB | {r['api_requests_per_s']} "
            f"| {r['status_patches_per_s']} | {r['redis_commands_per_s']:,} "
            f"| {r['redis_reads_per_s']:,} | {_s(r['raise_p50_s'])} / {_s(r['raise_p99_s'])} "
            f"({r['raised']}/{r['fed']}) | {r['load_avg_1m'][0]} -> {r['load_avg_1m'][1]} "
            f"| {idle} |"
        )
    return "\n".join(lines) + "\n"


def failover_table(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['shared']}. Two replicas peered with "
        "`--peering-lifetime` as stated; seconds after the active replica's SIGKILL until the "
        "standby's log says it resumed (leads), until the Deployment shows the standby's first "
        "scale decision (1 -> 2), and until its first periodic job (an every-minute schedule: "
        "up to a minute later by design).",
        "",
        "| date (UTC) | peering lifetime | standby leading | first scale decision "
        "| first periodic job | due times, jobs | load 1 min |",
        "| --- | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in doc["runs"]:
        t = r["timeline_s"]
        lines.append(
            f"| {r['date']} | {r['peering_lifetime_s']} s | {t['standby resumed']:.1f} s "
            f"| {t['standby scaled 1 -> 2']:.1f} s "
            f"| {t['periodic job by the new active one']:.1f} s "
            f"| {r['due_times']} due, {r['scheduled_jobs']} jobs | {r['load_avg_1m'][0]} -> "
            f"{r['load_avg_1m'][1]} |"
        )
    return "\n".join(lines) + "\n"


def render_text(text: str) -> str:
    def one(mt: re.Match[str]) -> str:
        doc = json.loads((ROOT / mt["path"]).read_text())
        return f"<!-- operator-scale results={mt['path']} -->\n{table(doc)}<!-- /operator-scale -->"

    def failover(mt: re.Match[str]) -> str:
        doc = json.loads((ROOT / mt["path"]).read_text())
        body = failover_table(doc)
        return f"<!-- operator-failover results={mt['path']} -->\n{body}<!-- /operator-failover -->"

    return FAILOVER_MARKER.sub(failover, MARKER.sub(one, text))


def render_docs(results: str | None = None) -> None:
    """Rewrite every operator-scale block (pointed at ``results`` first when given)."""
    for path in DOCS:
        text = path.read_text()
        if results:
            marker = f"<!-- operator-scale results={results} -->"
            text = re.sub(r"<!-- operator-scale results=\S+ -->", marker, text)
        new = render_text(text)
        if new != text:
            path.write_text(new)
            print(f"rendered {path.relative_to(ROOT)}")
