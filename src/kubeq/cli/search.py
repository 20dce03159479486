"""``kubeq jobs``: find jobs by queue, status, task, tags and age; cancel or requeue what
matches.

    kubeq jobs -q orders --status failed --task shop.pay --since 1h
    kubeq jobs -q orders --status finished --tag customer:42 -o json
    kubeq jobs -q orders --status failed --since 1h --requeue --dry-run   # how many, which
    kubeq jobs -q orders --status failed --since 1h --requeue --yes       # then act

Backed by each state's own set and the task and tag index (``kubeq.client.search``): no
SCAN. A bulk action is recorded in the audit stream (``kubeq audit``).
"""

from __future__ import annotations

import dataclasses
import re

import click
from rich.table import Table

from kubeq.cli.audit import recorded
from kubeq.cli.output import Context, cells, console, emit_json, pass_ctx, plain, when
from kubeq.client.search import STATUSES, find

_SPAN = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since(value: str | None) -> float | None:
    if not value:
        return None
    m = _SPAN.fullmatch(value.strip())
    if not m:
        raise click.BadParameter(
            f"{value!r}: use a number and s, m, h or d, e.g. 1h", param_hint="--since"
        )
    return float(m.group(1)) * _UNIT[m.group(2)]


@click.command("jobs")
@click.option("-q", "--queue", required=True, help="The queue (a partitioned one: all partitions).")
@click.option("--status", type=click.Choice(STATUSES), default="any", show_default=True)
@click.option("--task", default=None, help="Exact task name.")
@click.option("--tag", "tags", multiple=True, help="A tag the job carries (repeat: all of them).")
@click.option(
    "--since", default=None, help="Enqueued (failed: dead-lettered) within, e.g. 30m, 1h."
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "name"]),
    default="table",
    show_default=True,
)
@click.option("--cancel", "action", flag_value="cancel", help="Cancel what matches (not started).")
@click.option("--requeue", "action", flag_value="requeue", help="Requeue matching dead letters.")
@click.option("--dry-run", is_flag=True, help="With --cancel/--requeue: how many and which.")
@click.option("--yes", is_flag=True, help="With --cancel/--requeue: act (see --dry-run first).")
@pass_ctx
def jobs(
    obj: Context,
    queue: str,
    status: str,
    task: str | None,
    tags: tuple[str, ...],
    since: str | None,
    limit: int,
    output: str,
    action: str | None,
    dry_run: bool,
    yes: bool,
) -> None:
    """Find jobs; with --cancel or --requeue, act on every match (see --dry-run)."""
    q = obj.queue(queue)
    try:
        found = find(
            obj.app, q.partitions, status, task=task, tags=tags, since=_since(since), limit=limit
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tag") from None
    if not found.complete:
        click.echo(f"warning: stopped after {found.looked_at} entries; narrow the filter", err=True)
    if action is not None:
        if action == "requeue" and status != "failed":
            raise click.UsageError("--requeue applies to --status failed (dead letters)")
        if dry_run:
            click.echo(f"would {action} {len(found.jobs)} jobs")
            for j in found.jobs:
                click.echo(f"{plain(j.id)}\t{plain(j.queue)}\t{j.status}\t{plain(j.task)}")
            return
        if not yes:
            raise click.UsageError(
                f"{action} {len(found.jobs)} jobs? See which with --dry-run, then add --yes"
            )
        if action == "requeue":
            by_queue: dict[str, list[str]] = {}
            for j in found.jobs:
                by_queue.setdefault(j.queue, []).append(j.id)
            done = [obj.app.queue(name).requeue(ids) for name, ids in by_queue.items()]
            n = sum(d.count for d in done)
            for job_id, why in (kv for d in done for kv in d.refused.items()):
                click.echo(f"not requeued {plain(job_id)}: {plain(why)}", err=True)
        else:
            n = sum(obj.app.job(j.id, j.queue).cancel() for j in found.jobs)
        what = f"queue={queue} status={status}" + (f" task={task}" if task else "")
        what += "".join(f" tag={t}" for t in tags) + (f" since={since}" if since else "")
        recorded(obj, f"jobs.{action}", what, n, queue)
        past = {"cancel": "cancelled", "requeue": "requeued"}[action]
        click.echo(f"{past} {n} of {len(found.jobs)} jobs")
        return
    if output == "name":
        for j in found.jobs:
            click.echo(plain(j.id))
    elif output == "json":
        emit_json([dataclasses.asdict(j) for j in found.jobs])
    else:
        table = Table(box=None)
        for col in ("id", "queue", "status", "task", "tags", "enqueued", "attempts", "reason"):
            table.add_column(col, no_wrap=col == "id")
        for j in found.jobs:
            table.add_row(
                *cells(
                    j.id,
                    j.queue,
                    j.status,
                    j.task,
                    " ".join(j.tags),
                    when(j.enqueued_at),
                    j.attempts,
                    j.reason or j.error[:80],
                )
            )
        console.print(table)
