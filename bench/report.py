"""The bench's tables, made from a results JSON alone; and the README blocks that show them.

Why: a table copied by hand into a README goes stale the day the next run lands.
Every figure the READMEs show about kubeq against its peers is rendered here from one
``bench/results/*.json``, between markers that name the file::

    <!-- bench:comparison results=bench/results/2026-11-27.json -->
    ...generated, never edited by hand...
    <!-- /bench:comparison -->

``python bench/report.py README.md bench/README.md`` rewrites every block from the file its
marker names (``--results FILE`` points them all at another file first; ``run.py
--update-readme`` does that after a run); ``--check`` only compares, and
``tests/unit/test_bench_report.py`` fails when a README and its results file disagree.

Block kinds: ``summary`` (when, where, the load), ``comparison`` (kubeq and the peers),
``limits`` (Redis's own limit), ``curve`` (cost of a deep backlog), ``targets`` (the project's
targets, reached or not), ``autoscale``, and ``ab`` (kubeq against a variant of itself
measured in the same run: ``run.py --variant LABEL=PATH``); ``swarm``, ``idlecost``,
``capacity`` and ``percommand`` are the fleet's (bench/fleet_report.py: bench/swarm.py,
bench/idle_cost.py); ``jobcommands`` is bench/job_commands.py's;
``gateway`` is bench/gateway_report.py's (tests/gateway/test_gateway_load.py);
``scaledjob`` is bench/scaling_jobs_report.py's (Job mode against KEDA ScaledJob);
``workerfloor`` is bench/worker_floor.py's; ``limittargets`` is bench/limit_targets.py's
(the targets against Redis's own limit and the peers' least memory); ``latencyfloor`` is
bench/latency_floor.py's; ``draindistance`` is bench/drain_distance.py's; ``drainanatomy``
is bench/drain_anatomy.py's; ``enqueueanatomy`` is bench/enqueue_anatomy.py's;
``redisinstructions`` is bench/redis_instructions.py's; the others
are rendered by bench/tables.py. This module finds the blocks and rewrites them.
Standard library only: the test imports it from the project venv.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MARKER = re.compile(
    r"<!-- bench:(?P<kind>[a-z]+) results=(?P<path>\S+) -->\n"
    r"(?P<body>.*?)<!-- /bench:(?P=kind) -->",
    re.S,
)


def _sibling(module_name: str, name: str) -> Callable[[dict[str, Any], str], str]:
    """A renderer of a module beside this file (tables.py: the peers' tables; fleet_report.py:
    the swarm's), loaded when a block is rendered."""

    def render(res: dict[str, Any], path: str) -> str:
        spec = importlib.util.spec_from_file_location(
            f"bench_{module_name}", Path(__file__).with_name(f"{module_name}.py")
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out: str = getattr(module, name)(res, path)
        return out

    return render


RENDERERS: dict[str, Callable[[dict[str, Any], str], str]] = {
    "swarm": _sibling("fleet_report", "swarm"),
    "idlecost": _sibling("fleet_report", "idlecost"),
    "capacity": _sibling("fleet_report", "capacity"),
    "percommand": _sibling("fleet_report", "percommand"),
    "jobcommands": _sibling("job_commands", "render"),
    "summary": _sibling("tables", "summary"),
    "comparison": _sibling("tables", "comparison"),
    "limits": _sibling("tables", "limits"),
    "curve": _sibling("tables", "curve"),
    "targets": _sibling("tables", "targets"),
    "autoscale": _sibling("tables", "autoscale"),
    "ab": _sibling("tables", "ab"),
    "gateway": _sibling("gateway_report", "gateway"),
    "scaledjob": _sibling("scaling_jobs_report", "render"),
    "workerfloor": _sibling("worker_floor", "render"),
    "limittargets": _sibling("limit_targets", "render"),
    "latencyfloor": _sibling("latency_floor", "render"),
    "latencyanatomy": _sibling("latency_anatomy", "render"),
    "draindistance": _sibling("drain_distance", "render"),
    "drainanatomy": _sibling("drain_anatomy", "render"),
    "enqueueanatomy": _sibling("enqueue_anatomy", "render"),
    "redisinstructions": _sibling("redis_instructions", "render"),
}


def render_block(kind: str, results_path: str) -> str:
    if kind not in RENDERERS:
        raise ValueError(f"unknown bench block kind {kind!r}: one of {', '.join(RENDERERS)}")
    res = json.loads((ROOT / results_path).read_text())
    return RENDERERS[kind](res, results_path).rstrip("\n") + "\n"


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(kind, results path, body) of every bench block in a README's text."""
    return [(m["kind"], m["path"], m["body"]) for m in MARKER.finditer(text)]


def rewrite(text: str, results: str | None = None, kinds: set[str] | None = None) -> str:
    """The text with every block (of ``kinds``, default all) rendered anew, from ``results``
    when given, else from the file each marker names."""

    def one(m: re.Match[str]) -> str:
        if kinds is not None and m["kind"] not in kinds:
            return m[0]
        path = results or m["path"]
        body = render_block(m["kind"], path)
        return f"<!-- bench:{m['kind']} results={path} -->\n{body}<!-- /bench:{m['kind']} -->"

    return MARKER.sub(one, text)


def mismatches(readme: Path) -> list[str]:
    """What in ``readme`` disagrees with the results files its markers name (empty: none)."""
    text = readme.read_text()
    out = []
    for kind, path, body in blocks(text):
        if not (ROOT / path).is_file():
            out.append(f"{readme.name}: bench:{kind} names {path}, which does not exist")
            continue
        want = render_block(kind, path)
        if body != want:
            out.append(
                f"{readme.name}: the bench:{kind} block differs from what {path} gives; "
                "run `python bench/report.py README.md bench/README.md`"
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("readmes", nargs="+", type=Path)
    ap.add_argument("--results", default=None, help="point every block at this results file")
    ap.add_argument("--kinds", default=None, help="only these block kinds (comma-separated)")
    ap.add_argument("--check", action="store_true", help="compare only; exit 1 on a difference")
    a = ap.parse_args()
    results = None
    if a.results:
        results = str(Path(a.results).resolve().relative_to(ROOT))
    kinds = set(a.kinds.split(",")) if a.kinds else None
    if a.check:
        bad = [m for r in a.readmes for m in mismatches(r)]
        print("\n".join(bad) or "every bench block agrees with its results file")
        return 1 if bad else 0
    for r in a.readmes:
        r.write_text(rewrite(r.read_text(), results, kinds))
        print(f"rewrote the bench blocks of {r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
