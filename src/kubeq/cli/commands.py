"""The queue commands of ``kubeq``: stats, enqueue, purge, signal, pause and resume.

Built on click (commands and options) and rich (tables). The group they belong to, and the
order in which the subcommands load, is ``root.py``; ``cli`` and ``main`` are re-exported
here for callers that import them from this module.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import click
from rich.live import Live
from rich.table import Table

from kubeq import defaults, serialization
from kubeq.cli.audit import recorded
from kubeq.cli.fair import show_by_key
from kubeq.cli.output import Context, cells, console, emit_json, output_option, pass_ctx, plain
from kubeq.cli.root import cli, main
from kubeq.client.app import Call
from kubeq.store.partitions import registered
from kubeq.store.stats import QueueStats, read_stats

__all__ = ["cli", "enqueue", "main", "pause", "purge", "resume", "signal", "stats", "stats_table"]


# -- stats -----


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def stats_table(stats: list[QueueStats]) -> Table:
    """The table `kubeq stats` prints (also used by the demo)."""
    table = Table(title="kubeq queues", title_justify="left")
    columns = [
        "queue",
        "backlog",
        "in flight",
        "delayed",
        "deferred",
        "sleeping",
        "dead",
        "oldest waiting",
        "workers",
        "busy",
    ]
    flows = any(_flow_numbers(s) != (0, 0, 0, 0) for s in stats)
    if flows:  # docs/patterns.md: a batch is one job above; its items are counted here
        columns += ["debounced", "singleton keys", "batches forming", "batched items"]
    for column in columns:
        table.add_column(column, justify="left" if column == "queue" else "right")
    for s in stats:
        name = s.queue + (" (paused)" if s.paused else "")
        name += " (rate-limited)" if s.rate_limited else ""
        table.add_row(
            *cells(
                name,
                s.backlog,
                s.in_flight,
                s.delayed,
                s.deferred,
                s.sleeping,
                s.dead,
                _age(s.oldest_ready_age) if s.backlog else "-",
                s.live_workers,
                s.busy_workers,
                *(_flow_numbers(s) if flows else ()),
            )
        )
    return table


def _flow_numbers(s: QueueStats) -> tuple[int, int, int, int]:
    return (s.debounced, s.singleton_keys, s.batches_forming, s.batched_items)


@click.command()
@click.argument("names", nargs=-1)
@click.option("-q", "--queue", "queues", multiple=True, help="Only these queues.")
@click.option(
    "--by-key", is_flag=True, help="The queue's fairness keys that waited longest (fair queues)."
)
@click.option("--top", default=defaults.FAIR_TOP, show_default=True, type=click.IntRange(1))
@click.option("-w", "--watch", is_flag=True, help="Refresh until interrupted.")
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(0.1))
@click.option(
    "--until-empty",
    is_flag=True,
    hidden=True,
    help="With --watch: stop once nothing waits or runs (used by make demo).",
)
@output_option
@pass_ctx
def stats(
    obj: Context,
    names: Sequence[str],
    queues: Sequence[str],
    by_key: bool,
    top: int,
    watch: bool,
    interval: float,
    until_empty: bool,
    output: str,
) -> None:
    """Backlog, in flight, delayed, dead, oldest job's age and workers, per queue (all, or
    the NAMES given). With --by-key: the fairness keys of each queue named."""
    queues = [*names, *queues]
    if by_key:
        show_by_key(obj, queues, top, output)
        return

    def read() -> list[QueueStats]:
        known = obj.all_queues()
        # a partitioned queue named by --queue is listed as its partitions
        chosen = [p for q in queues for p in (registered(q, known) or [q])] or known
        return read_stats(obj.app.redis, chosen, obj.app.prefix)

    if output == "json":
        if watch:
            raise click.UsageError("-o json prints once: drop --watch (or poll it)")
        emit_json(read())
        return
    if not watch:
        console.print(stats_table(read()))
        return
    with Live(stats_table(read()), console=console, refresh_per_second=4) as live:
        try:
            while True:
                time.sleep(interval)
                current = read()
                live.update(stats_table(current))
                if until_empty and all(s.backlog + s.in_flight + s.delayed == 0 for s in current):
                    return
        except KeyboardInterrupt:
            return


# -- enqueue, purge, pause -----------------------------------------------------------------------


def _json_arg(value: str, name: str, kind: type) -> Any:
    try:
        parsed = serialization.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint=name) from None
    if not isinstance(parsed, kind):
        raise click.BadParameter(f"must be a JSON {kind.__name__}", param_hint=name)
    return parsed


@click.command()
@click.argument("task")
@click.option("--args", "args_json", default="[]", help="Positional arguments as a JSON array.")
@click.option("--kwargs", "kwargs_json", default="{}", help="Keyword arguments as a JSON object.")
@click.option("-q", "--queue", default=defaults.QUEUE, show_default=True)
@click.option("--priority", type=click.IntRange(0, 9), default=None, help="0 lowest .. 9 highest.")
@click.option("--delay", type=click.FloatRange(0), default=None, help="Seconds before it may run.")
@click.option("--job-id", default=None, help="Id for de-duplication.")
@click.option(
    "--wait",
    "wait",
    type=click.FloatRange(0),
    default=None,
    help="Wait up to this many seconds and print the result.",
)
@pass_ctx
def enqueue(
    obj: Context,
    task: str,
    args_json: str,
    kwargs_json: str,
    queue: str,
    priority: int | None,
    delay: float | None,
    job_id: str | None,
    wait: float | None,
) -> None:
    """Enqueue TASK (its registered name, e.g. shop.tasks.send_email) and print the job id."""
    args = _json_arg(args_json, "--args", list)
    kwargs = _json_arg(kwargs_json, "--kwargs", dict)
    call = Call(
        task, tuple(args), kwargs, queue=queue, priority=priority, delay=delay, job_id=job_id
    )
    job = obj.app.enqueue_many([call])[0]
    click.echo(job.id)
    if wait is not None:
        click.echo(plain(serialization.dumps(job.result(timeout=wait)).decode()))


@click.command()
@click.argument("queue")
@click.option("--yes", is_flag=True, help="Don't ask.")
@pass_ctx
def purge(obj: Context, queue: str, yes: bool) -> None:
    """Delete every waiting job of QUEUE (running jobs and dead letters stay)."""
    if not yes:
        click.confirm(f"Delete every waiting job of {queue!r}?", abort=True)
    n = obj.queue(queue).purge()
    recorded(obj, "queue.purge", queue, n, queue)
    click.echo(f"purged {n} jobs from {queue}")


@click.command()
@click.argument("key")
@click.option("--data", default="null", show_default=True, help="The payload, as JSON.")
@click.option("-q", "--queue", default=defaults.QUEUE, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["all", "one"]),
    default="all",
    show_default=True,
    help="Wake every job waiting on KEY (and keep the payload for later waits), or one.",
)
@click.option("--ttl", type=click.FloatRange(0), default=None, help="Seconds the payload is kept.")
@pass_ctx
def signal(obj: Context, key: str, data: str, queue: str, mode: str, ttl: float | None) -> None:
    """Deliver a signal: wake the jobs of QUEUE waiting on KEY (kubeq.wait_for)."""
    try:
        payload = serialization.loads(data)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc}); e.g. --data '{{\"ok\": true}}'") from None
    woken = obj.queue(queue).signal(key, payload, mode=mode, ttl=ttl)
    click.echo(f"signal {key!r}: woke {woken} job{'s' if woken != 1 else ''}")


@click.command()
@click.argument("queue")
@pass_ctx
def pause(obj: Context, queue: str) -> None:
    """Workers take no new job from QUEUE (running jobs finish; enqueue goes on)."""
    q = obj.queue(queue)
    q.pause()
    recorded(obj, "queue.pause", queue, q.stats().backlog, queue)
    click.echo(f"paused {queue}")


@click.command()
@click.argument("queue")
@pass_ctx
def resume(obj: Context, queue: str) -> None:
    """Undo `kubeq pause QUEUE`."""
    q = obj.queue(queue)
    q.resume()
    recorded(obj, "queue.resume", queue, q.stats().backlog, queue)
    click.echo(f"resumed {queue}")
