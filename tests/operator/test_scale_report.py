"""The operator-scale tables in bench/README.md and docs/scaling.md are what their results file
gives (``bench/operator_scale_report.py`` renders them; nobody edits them by hand)."""

from __future__ import annotations

import sys

from tests.operator.opsupport import ROOT

sys.path.insert(0, str(ROOT / "bench"))

import operator_scale_report


def test_rendered_tables_match_their_results_file() -> None:
    for doc in operator_scale_report.DOCS:
        text = doc.read_text()
        assert operator_scale_report.MARKER.search(text), f"{doc.name} has no operator-scale block"
        assert operator_scale_report.render_text(text) == text, (
            f"{doc.name}: run `python bench/operator_many_taskqueues.py --render RESULTS`"
        )
