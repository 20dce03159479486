"""``kubeq audit``: the admin actions recorded on this Redis, newest first; and ``recorded``,
which every admin command of the CLI calls once it has acted.

Who paused, resumed or purged a queue, cancelled, aborted or requeued jobs, changed a
schedule, from where (CLI, dashboard, gateway), when, and how many jobs or schedules it
changed (``kubeq.store.audit``).
"""

from __future__ import annotations

import dataclasses

import click
from rich.table import Table

from kubeq.cli.output import Context, cells, console, emit_json, output_option, pass_ctx, when
from kubeq.store import audit as store


def recorded(obj: Context, action: str, target: str, count: int, queue: str = "") -> None:
    """Record an admin action of the CLI (who: ``KUBEQ_ACTOR``, else ``user@host``)."""
    store.record(obj.app.redis, obj.app.prefix, action, target, count, queue=queue, via="cli")


@click.command("audit")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, store.MAX_ENTRIES))
@click.option("--who", default="", help="Only entries whose who contains this.")
@click.option("--action", default="", help="Only actions starting with this, e.g. job. or dlq.")
@click.option("-q", "--queue", default="", help="Only entries of this queue.")
@output_option
@pass_ctx
def audit(obj: Context, limit: int, who: str, action: str, queue: str, output: str) -> None:
    """List the recorded admin actions (who, what, when, how many), newest first; the filters
    look at the newest 10,000 entries."""
    filtered = bool(who or action or queue)
    entries = store.read(obj.app.redis, obj.app.prefix, store.MAX_ENTRIES if filtered else limit)
    entries = [
        e
        for e in entries
        if who.lower() in e.who.lower()
        and e.action.startswith(action)
        and (not queue or e.queue == queue)
    ][:limit]
    if output == "json":
        emit_json([dataclasses.asdict(e) for e in entries])
        return
    table = Table(box=None)
    for col in ("when", "who", "via", "action", "target", "count"):
        table.add_column(col)
    for e in entries:
        table.add_row(*cells(when(e.at_ms / 1000), e.who, e.via, e.action, e.target, e.count))
    console.print(table)
