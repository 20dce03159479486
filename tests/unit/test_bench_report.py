"""The READMEs show the bench's figures only as bench/report.py renders them from the results
file each block names: a number edited by hand, a block left behind by a new run,
or a marker naming a file that is gone fails here."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]
READMES = [
    ROOT / "README.md",
    ROOT / "bench" / "README.md",
    ROOT / "docs" / "architecture.md",
    ROOT / "docs" / "scaling.md",
]


def load(name: str) -> ModuleType:
    return load_bench(name, f"bench_{name}")


report = load("report")
tables = load("tables")


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_bench_block_agrees_with_its_results_file(readme: Path) -> None:
    assert report.mismatches(readme) == []


def test_the_readmes_show_the_comparison_of_the_latest_full_run() -> None:
    """The main README's comparison table comes from a dated results file, the newest one."""
    kinds = {kind: path for kind, path, _ in report.blocks((ROOT / "README.md").read_text())}
    assert "comparison" in kinds, "README.md has no generated comparison table"
    dated = sorted((ROOT / "bench" / "results").glob("20[0-9][0-9]-[01][0-9]-[0-3][0-9].json"))
    assert kinds["comparison"] == str(dated[-1].relative_to(ROOT))
    bench_kinds = {k for k, _, _ in report.blocks((ROOT / "bench" / "README.md").read_text())}
    assert {"summary", "comparison", "limits", "curve", "targets"} <= bench_kinds


def test_a_number_changed_by_hand_is_caught(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    body = next(b for kind, _, b in report.blocks(text) if kind == "comparison")
    first_number = re.search(r"\d[\d,]*/s", body)
    assert first_number is not None, "the comparison block shows no rate"
    tampered = body.replace(first_number[0], "1" + first_number[0], 1)
    copy = tmp_path / "README.md"
    copy.write_text(text.replace(body, tampered, 1))
    assert report.mismatches(copy) != []
    copy.write_text(report.rewrite(copy.read_text()))  # and a rewrite puts it right
    assert report.mismatches(copy) == []


def test_a_block_naming_a_missing_results_file_is_caught(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "<!-- bench:comparison results=bench/results/1999-01-01.json -->\n|x|\n"
        "<!-- /bench:comparison -->\n"
    )
    (msg,) = report.mismatches(readme)
    assert "1999-01-01.json" in msg and "does not exist" in msg


def test_targets_say_which_are_reached() -> None:
    res = {
        "medians": {
            "kubeq": {
                "drain_default": 3100.0,
                "drain_best": 2000.0,
                "enqueue_single": 900.0,
                "enqueue_bulk": 60.0,
                "latency_p99": 2.0,
            },
            "dramatiq": {
                "drain_default": 1000.0,
                "drain_best": 1000.0,
                "enqueue_single": 600.0,
                "latency_p50": 3.0,
            },
        },
        "redis_limits": {"raw": {"enqueue_pipelined": 100.0}},
    }
    rows = tables.targets(res, "x.json").splitlines()[2:]
    reached = {r.split(" | ")[0].strip("| "): r.rsplit(" | ", 1)[1].strip(" |") for r in rows}
    assert reached == {
        "drain, 1 process, default settings": "yes",  # 3.10x
        "drain, 1 process, best settings": "**no**",  # 2.00x
        "enqueue, one call per job": "yes",  # 1.50x
        "enqueue -> start p99": "yes",  # 2.0 <= 3.0 ms
        "enqueue, bulk": "yes",  # 60%
    }
