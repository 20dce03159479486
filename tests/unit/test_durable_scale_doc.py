"""docs/durable.md shows the durable scale bench's figures only as bench/durable_scale.py
renders them from the results file its block names: a figure edited by hand, or a block
left behind by a new run, fails here."""

from __future__ import annotations

from pathlib import Path

from tests.support.modules import load_bench

ROOT = Path(__file__).resolve().parents[2]


def test_the_at_scale_paragraph_is_the_one_its_results_file_renders() -> None:
    bench = load_bench("durable_scale", "bench_durable_scale")
    block = bench.shown((ROOT / "docs" / "durable.md").read_text())
    assert block is not None, "docs/durable.md has no <!-- durable-scale results=... --> block"
    path, text = block
    assert (ROOT / path).exists(), f"the block names {path}, which is not in the checkout"
    assert text == bench.paragraph(path)
    assert "sleeping 10,000, backlog 0, in flight 0, live workers 0" in text
