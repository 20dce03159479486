"""``kubeq audit``: the admin actions recorded on this Redis, newest first.

Who paused, resumed, triggered or deleted a schedule, who cancelled or requeued jobs with
``kubeq jobs``, when, and how many jobs or schedules it changed (``kubeq.store.audit``).
"""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from kubeq.cli.output import Context, cells, console, emit_json, output_option, pass_ctx, when
from kubeq.store import audit as store


@click.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, store.MAX_ENTRIES))
@output_option
@pass_ctx
def audit(obj: Context, limit: int, output: str) -> None:
    """List the recorded admin actions (who, what, when, how many), newest first."""
    entries = store.read(obj.app.redis, obj.app.prefix, limit)
    if output == "json":
        emit_json([dataclasses.asdict(e) for e in entries])
        return
    table = Table(box=None)
    for col in ("when", "who", "action", "target", "count"):
        table.add_column(col)
    for e in entries:
        table.add_row(*cells(when(e.at_ms / 1000), e.who, e.action, e.target, e.count))
    console.print(table)
