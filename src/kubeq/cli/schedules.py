"""``kubeq schedule list/show/pause/resume/trigger/delete``: the schedules on this Redis.

Spec schedules (``tq:<namespace>:<taskqueue>:<name>``, owned by their TaskQueue) and the
library's runtime schedules alike. Times print in the schedule's own time zone, which is the
one its cron line is read in; ``-o json`` gives Unix times for scripts.
"""

from __future__ import annotations

import click
from rich.table import Table

from kubeq.cli.output import Context, cells, console, emit_json, output_option, pass_ctx, plain
from kubeq.schedules_time import iso
from kubeq.store import audit
from kubeq.store.schedules import ScheduleState


@click.group()
def schedule() -> None:
    """List, show, pause, resume, trigger or delete schedules (docs/schedules.md)."""


def _when(ts: int | None, tz: str) -> str:
    return iso(ts, tz) if ts else ""


def _every(st: ScheduleState) -> str:
    s = st.schedule
    return f"cron {s.cron}" if s.cron else f"every {s.every}s"


def _get(obj: Context, schedule_id: str) -> ScheduleState:
    st = obj.app.schedules.get(schedule_id)
    if st is None:
        click.echo(
            f"no schedule {plain(schedule_id)!s}; `kubeq schedule list` lists them", err=True
        )
        raise SystemExit(1)
    return st


@schedule.command("list")
@click.option("--after", default="", help="Page: list ids after this one.")
@click.option("--limit", default=1000, show_default=True, type=click.IntRange(1, 100_000))
@output_option
@pass_ctx
def schedule_list(obj: Context, after: str, limit: int, output: str) -> None:
    """Every schedule with its next and last run."""
    states = obj.app.schedules.list(after=after, limit=limit)
    if output == "json":
        emit_json([st.to_dict() for st in states])
        return
    table = Table(box=None)
    for col in ("id", "task", "queue", "when", "timezone", "next", "last", "state"):
        table.add_column(col, no_wrap=col in ("id", "next", "last"))
    for st in states:
        s = st.schedule
        state = "paused" if st.paused else ("ended" if st.next_due is None else "active")
        table.add_row(
            *cells(
                s.id,
                s.task,
                s.queue,
                _every(st),
                s.timezone,
                _when(st.next_due, s.timezone),
                _when(st.last_due, s.timezone),
                state,
            )
        )
    console.print(table)
    if len(states) == limit:
        click.echo(f"(more: --after {plain(states[-1].schedule.id)})", err=True)


@schedule.command("show")
@click.argument("schedule_id")
@output_option
@pass_ctx
def schedule_show(obj: Context, schedule_id: str, output: str) -> None:
    """One schedule: its definition, its next and last runs, its counters."""
    st = _get(obj, schedule_id)
    if output == "json":
        emit_json(st.to_dict())
        return
    s = st.schedule
    rows = [
        ("id", s.id),
        ("owner", s.owner or "library"),
        ("task", s.task),
        ("queue", s.queue),
        ("when", _every(st)),
        ("timezone", s.timezone),
        ("args", list(s.args)),
        ("kwargs", dict(s.kwargs)),
        ("state", "paused" if st.paused else "active"),
        ("next", _when(st.next_due, s.timezone) or "none (ended)"),
        ("last", _when(st.last_due, s.timezone)),
        ("last job", st.last_job or ""),
        ("missed", f"{s.missed} (catch up {s.catch_up}, grace {s.grace:g}s)"),
        ("overlap", s.overlap),
        ("dst gap", s.dst_gap),
        ("jitter", f"{s.jitter:g}s"),
        ("start", _when(s.start, s.timezone)),
        ("end", _when(s.end, s.timezone)),
        (
            "prewarm",
            f"{s.prewarm_replicas} workers {s.prewarm_seconds:g}s ahead"
            if s.prewarm_seconds
            else "",
        ),
        ("fired", st.fired),
        ("missed runs", st.missed),
        ("skipped runs", st.skipped),
        ("buffered", _when(st.buffered, s.timezone)),
    ]
    for name, value in rows:
        if value not in ("", None, [], {}):
            click.echo(f"{name:>12}: {plain(value)}")


def _change(obj: Context, schedule_id: str, verb: str) -> None:
    with audit.acting_as(audit.actor(), "cli"):
        done = getattr(obj.app.schedules, verb)(schedule_id)
    if not done:
        click.echo(f"no schedule {plain(schedule_id)}", err=True)
        raise SystemExit(1)
    click.echo(f"{verb}d {plain(schedule_id)}")


@schedule.command("pause")
@click.argument("schedule_id")
@pass_ctx
def schedule_pause(obj: Context, schedule_id: str) -> None:
    """Stop firing it (runs already enqueued stay)."""
    _change(obj, schedule_id, "pause")


@schedule.command("resume")
@click.argument("schedule_id")
@pass_ctx
def schedule_resume(obj: Context, schedule_id: str) -> None:
    """Fire again from the next due time (runs due while paused are skipped)."""
    _change(obj, schedule_id, "resume")


@schedule.command("delete")
@click.argument("schedule_id")
@pass_ctx
def schedule_delete(obj: Context, schedule_id: str) -> None:
    """Remove a runtime schedule (a spec schedule comes back: edit the TaskQueue instead)."""
    st = _get(obj, schedule_id)
    if st.schedule.owner:
        click.echo(
            f"warning: {plain(schedule_id)} belongs to {plain(st.schedule.owner)}; its operator "
            "writes it back: remove it from the TaskQueue's spec.schedules",
            err=True,
        )
    _change(obj, schedule_id, "delete")


@schedule.command("trigger")
@click.argument("schedule_id")
@pass_ctx
def schedule_trigger(obj: Context, schedule_id: str) -> None:
    """Enqueue one run now, outside its times (its next due time does not change)."""
    _get(obj, schedule_id)
    with audit.acting_as(audit.actor(), "cli"):
        job_id = obj.app.schedules.trigger(schedule_id)
    click.echo(f"enqueued {plain(job_id)}")
