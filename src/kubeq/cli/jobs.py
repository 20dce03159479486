"""``kubeq job``, ``kubeq dlq ...`` and ``kubeq limit``: look at or abort one job; list, show,
re-queue and purge dead letters; set a queue's rate limit. Each read command has ``-o json``
for scripts; ``dlq list -o name`` prints bare ids (one per line) for ``xargs``.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

import click
from rich.table import Table

from kubeq import defaults
from kubeq.cli.audit import recorded
from kubeq.cli.output import (
    Context,
    cells,
    console,
    emit_json,
    id_column,
    output_option,
    pass_ctx,
    plain,
    when,
)
from kubeq.client.queues import Queue
from kubeq.store.jobfields import JobInfo
from kubeq.workflows.edges import Edges


class _JobGroup(click.Group):
    """``kubeq job ID`` shows a job (``show`` is implied); ``kubeq job abort ID`` aborts it."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_JobGroup)
def job() -> None:
    """Show (``kubeq job ID``), cancel or abort (``kubeq job abort ID``) one job."""


@job.command("abort")
@click.argument("job_id")
@click.option("-q", "--queue", default=defaults.QUEUE, show_default=True)
@pass_ctx
def job_abort(obj: Context, job_id: str, queue: str) -> None:
    """Stop a job: a waiting one never runs, a running one is stopped by its worker within
    one heartbeat (no retry). Exits 1 when the job had already ended."""
    if obj.app.job(job_id, queue).abort():
        recorded(obj, "job.abort", job_id, 1, queue)
        click.echo(f"aborted {job_id}")
        return
    click.echo(f"job {job_id} had already ended; nothing to abort", err=True)
    raise SystemExit(1)


@job.command("cancel")
@click.argument("job_id")
@click.option("-q", "--queue", default=defaults.QUEUE, show_default=True)
@pass_ctx
def job_cancel(obj: Context, job_id: str, queue: str) -> None:
    """Cancel a job that has not started (``kubeq job abort`` stops a running one too).
    Exits 1 when it is running or has ended."""
    if obj.app.job(job_id, queue).cancel():
        recorded(obj, "job.cancel", job_id, 1, queue)
        click.echo(f"cancelled {job_id}")
        return
    click.echo(f"job {job_id} is running or has ended; not cancelled", err=True)
    raise SystemExit(1)


@job.command("show")
@click.argument("job_id")
@click.option("-q", "--queue", default=defaults.QUEUE, show_default=True)
@output_option
@pass_ctx
def job_show(obj: Context, job_id: str, queue: str, output: str) -> None:
    """Show one job's state."""
    handle = obj.app.job(job_id, queue)
    info = handle.info()
    edges = handle.edges()
    steps = handle.steps()
    if output == "json":
        fields = {f.name: getattr(info, f.name) for f in dataclasses.fields(info)}
        emit_json({**fields, "parents": edges.parents, "children": edges.children, "steps": steps})
    else:
        show(info, edges, steps)


def show(info: JobInfo, edges: Edges | None = None, steps: dict[str, Any] | None = None) -> None:
    """One job, field by field, traceback last."""
    for field_name in (
        "id",
        "queue",
        "status",
        "task",
        "payload",
        "priority",
        "attempts",
        "deliveries",
        "worker",
        "reason",
        "error",
        "result",
    ):
        value = getattr(info, field_name)
        if value not in ("", None):
            click.echo(f"{field_name:>10}: {plain(value)}")
    for field_name in ("enqueued_at", "started_at", "finished_at"):
        value = getattr(info, field_name)
        if value:
            click.echo(f"{field_name:>10}: {when(value)}")
    if info.status == "sleeping":
        what = f"signal {info.waiting_for!r}" if info.waiting_for else "its time"
        until = f" until {when(info.sleep_until)}" if info.sleep_until else ""
        click.echo(f"{'sleeping':>10}: {plain(info.wait_step)}, waiting for {plain(what)}{until}")
    if info.flow:
        joined = f", {info.flow_joined} later call(s) joined it" if info.flow_joined else ""
        click.echo(f"{'flow':>10}: {plain(info.flow_mode)} key {plain(info.flow)}{joined}")
    if info.pinned_version:
        click.echo(f"{'pinned':>10}: to worker version {plain(info.pinned_version)}")
    if info.batch:
        click.echo(f"{'batch':>10}: {plain(info.batch)} (the batch job it runs in)")
    if info.progress is not None:
        click.echo(f"{'progress':>10}: {json.dumps(info.progress)}")
    for key, value in info.meta.items():
        click.echo(f"{plain('meta.' + key):>10}: {json.dumps(value)}")
    for name, record in (steps or {}).items():
        click.echo(f"{plain('step ' + name):>10}: {plain(json.dumps(record))[:200]}")
    if edges is not None:
        show_edges(edges)
    if info.traceback:
        click.echo("traceback:")
        click.echo(plain(info.traceback.rstrip()))


def show_edges(edges: Edges) -> None:
    """Parents and children, one a line with their status (and how a callback follows)."""
    for label, listed, more in (
        ("parents", edges.parents, edges.more_parents),
        ("children", edges.children, edges.more_children),
    ):
        for n, edge in enumerate(listed):
            how = f", {edge.via}" if edge.via else ""
            head = f"{label}:" if n == 0 else ""
            click.echo(f"{head:>11} {plain(f'{edge.queue}/{edge.id} ({edge.status}{how})')}")
        if more:
            click.echo(f"{'':>11} ... and {more} more {label} not listed")


@click.group()
def dlq() -> None:
    """List, show, re-queue and purge dead letters."""


def _queues(obj: Context, *given: str | None) -> list[str]:
    """The queue named by the argument or --queue (they must agree), else every queue."""
    named = {q for q in given if q}
    if len(named) > 1:
        raise click.UsageError(f"two different queues given: {', '.join(sorted(named))}")
    return list(named) if named else obj.all_queues()


@dlq.command("list")
@click.argument("queue_arg", metavar="[QUEUE]", required=False)
@click.option("-q", "--queue", default=None, help="One queue (default: all).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
@click.option(
    "-o",
    "--output",
    type=click.Choice(["table", "json", "name"]),
    default="table",
    show_default=True,
    help="table for people, json for scripts, name for bare ids.",
)
@pass_ctx
def dlq_list(
    obj: Context, queue_arg: str | None, queue: str | None, limit: int, output: str
) -> None:
    """The most recent dead letters of QUEUE (default: every queue) with their reason."""
    infos = [
        info
        for name in _queues(obj, queue_arg, queue)
        for info in obj.queue(name).dead_letters(limit)
    ]
    if output == "json":
        emit_json(infos)
        return
    if output == "name":
        for info in infos:
            click.echo(plain(info.id))
        return
    if not infos:
        console.print("no dead letters")
        return
    table = Table(title="dead letters", title_justify="left")
    table.add_column("queue", no_wrap=True)
    id_column(table, [plain(i.id) for i in infos])
    table.add_column("task")
    table.add_column("attempts", justify="right")
    table.add_column("died", no_wrap=True)
    table.add_column("reason", overflow="fold")
    for info in infos:
        table.add_row(
            *cells(
                info.queue, info.id, info.task, info.attempts, when(info.finished_at), info.reason
            )
        )
    console.print(table)


@dlq.command("show")
@click.argument("job_id")
@click.option("-q", "--queue", default=None, help="Its queue (default: search all).")
@output_option
@pass_ctx
def dlq_show(obj: Context, job_id: str, queue: str | None, output: str) -> None:
    """Everything about one dead letter, traceback included."""
    for name in _queues(obj, queue):
        info = obj.app.job(job_id, name).info()
        if info.status != "unknown":
            if output == "json":
                emit_json(info)
            else:
                show(info)
            return
    raise click.ClickException(f"no job {job_id} found")


def _dead_action(
    obj: Context, action: str, queue: str | None, ids: Sequence[str], all_: bool
) -> None:
    if not ids and not all_:
        raise click.UsageError("give job ids, or --all")
    total = 0
    refused: dict[str, str] = {}
    for name in _queues(obj, queue):
        q = obj.queue(name)
        chosen = list(ids) if ids else None
        if action == "requeue":
            done = q.requeue(chosen)
            n = done.count
            refused.update(done.refused)
        else:
            n = q.purge_dead(chosen)
        total += n
        if n:
            recorded(obj, f"dlq.{action}", " ".join(ids) if ids else "--all", n, name)
    verb = "re-queued" if action == "requeue" else "purged"
    click.echo(f"{verb} {total} dead letters")
    for job_id, why in refused.items():
        click.echo(f"not re-queued {plain(job_id)}: {plain(why)}", err=True)


@dlq.command("requeue")
@click.argument("job_ids", nargs=-1)
@click.option("-q", "--queue", default=None, help="One queue (default: all).")
@click.option("--all", "all_", is_flag=True, help="Every dead letter of the queue(s).")
@pass_ctx
def dlq_requeue(obj: Context, job_ids: Sequence[str], queue: str | None, all_: bool) -> None:
    """Run dead letters again, with fresh attempt counts."""
    _dead_action(obj, "requeue", queue, job_ids, all_)


@dlq.command("purge")
@click.argument("job_ids", nargs=-1)
@click.option("-q", "--queue", default=None, help="One queue (default: all).")
@click.option("--all", "all_", is_flag=True, help="Every dead letter of the queue(s).")
@pass_ctx
def dlq_purge(obj: Context, job_ids: Sequence[str], queue: str | None, all_: bool) -> None:
    """Delete dead letters for good."""
    _dead_action(obj, "purge", queue, job_ids, all_)


@click.command()
@click.argument("queue")
@click.argument("rate", required=False)
@click.option("--clear", is_flag=True, help="Remove the queue's rate limit.")
@pass_ctx
def limit(obj: Context, queue: str, rate: str | None, clear: bool) -> None:
    """Limit how fast QUEUE's jobs start, across every worker: RATE is like 20/s, 100/m or
    1000/h. Without RATE, print the current limit."""
    q = obj.queue(queue)
    if clear:
        q.set_rate_limit(None)
        recorded(obj, "queue.limit", f"{queue} none", 0, queue)
        click.echo(f"{queue}: no rate limit")
        return
    if rate is None:
        current = q.rate_limit()
        shown = f"{current}{_per_partition(q)}" if current else "no rate limit"
        click.echo(f"{queue}: {shown}")
        return
    try:
        q.set_rate_limit(rate)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="RATE") from None
    recorded(obj, "queue.limit", f"{queue} {rate}", 0, queue)
    click.echo(f"{queue}: at most {q.rate_limit() or rate}{_per_partition(q)}")


def _per_partition(q: Queue) -> str:
    """How a partitioned queue's limit reads: it holds on each partition."""
    n = len(q.partitions)
    return f" per partition ({n} partitions)" if n > 1 else ""
