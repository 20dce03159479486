"""``kubeq worker``: load a tasks module and run the worker loop on its queues."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
from collections.abc import Sequence

import click

from kubeq import defaults
from kubeq.cli.context import Context, pass_ctx, plain
from kubeq.client.app import App
from kubeq.worker import Worker, WorkerSettings
from kubeq.worker.registry import discover


class PlainFormatter(logging.Formatter):
    """Log lines carry job data (a task's error, a reason): printed through ``plain``, so a
    task cannot send control sequences to the terminal that shows the worker's log."""

    def format(self, record: logging.LogRecord) -> str:
        return plain(super().format(record))


@click.command()
@click.argument("tasks_module")
@click.option(
    "-q",
    "--queue",
    "queues",
    multiple=True,
    help="Queue to consume; repeat in priority order. Default: the tasks' queues.",
)
@click.option(
    "-c",
    "--concurrency",
    default=defaults.CONCURRENCY,
    show_default=True,
    type=click.IntRange(1),
    help="Jobs run at once by this process.",
)
@click.option(
    "--prefetch-ms",
    default=defaults.PREFETCH_MS,
    show_default=True,
    type=click.FloatRange(0),
    help="Lease ahead as many short jobs as the slots finish in this many ms (0: off).",
)
@click.option(
    "--pool",
    type=click.Choice(defaults.POOLS),
    default=defaults.POOL,
    show_default=True,
    help="Where sync tasks run; async tasks always run on the event loop.",
)
@click.option(
    "--lease",
    "lease_seconds",
    default=defaults.LEASE_SECONDS,
    show_default=True,
    type=click.FloatRange(0.5),
    help="Seconds before a silent worker's job runs again.",
)
@click.option(
    "--drain-timeout",
    default=defaults.DRAIN_TIMEOUT,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds running jobs get after SIGTERM; keep below the pod's grace period.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Serve /metrics and /healthz on this port.",
)
@click.option(
    "--stall-seconds",
    default=defaults.STALL_SECONDS,
    show_default=True,
    type=click.FloatRange(1),
    help="/healthz fails after this long without a round trip to Redis.",
)
@click.option(
    "--log-level",
    default=defaults.LOG_LEVEL,
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.option(
    "--burst",
    is_flag=True,
    help="Exit 0 once the queues have nothing ready and nothing runs (delayed jobs stay).",
)
@click.option(
    "--max-jobs",
    type=click.IntRange(1),
    default=None,
    help="Lease at most N jobs, then exit 0 once they end (with --burst --max-jobs 1: one "
    "job per process, as a Job-mode pool's pods run).",
)
@pass_ctx
def worker(
    obj: Context,
    tasks_module: str,
    queues: Sequence[str],
    concurrency: int,
    prefetch_ms: float,
    pool: str,
    lease_seconds: float,
    drain_timeout: float,
    metrics_port: int | None,
    stall_seconds: float,
    log_level: str,
    burst: bool,
    max_jobs: int | None,
) -> None:
    """Run the registered tasks of TASKS_MODULE (e.g. shop.tasks) from the queues."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(PlainFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=log_level.upper(), handlers=[handler])
    try:
        tasks = discover(tasks_module)
    except (ImportError, ValueError) as exc:
        raise click.UsageError(f"cannot load tasks from {tasks_module!r}: {exc}") from exc
    chosen = list(queues) or list(dict.fromkeys(t.options.queue for t in tasks.values()))
    # a queue the tasks' App partitions (App(partitions=...)) is consumed in all its partitions,
    # and the follow-ups this worker hands off to one go to the partition an enqueue would
    partitioned: dict[str, int] = {}
    for app in {id(t.app): t.app for t in tasks.values()}.values():
        if isinstance(app, App):
            chosen = list(dict.fromkeys(app.partitioner.expand(chosen)))
            for queue, n in app.partitioner.partitions.items():
                if partitioned.setdefault(queue, n) != n:
                    raise click.UsageError(
                        f"the Apps of {tasks_module!r} give queue {queue!r} "
                        f"{partitioned[queue]} and {n} partitions: declare one count"
                    )
    settings = WorkerSettings(
        tasks_module=tasks_module,
        queues=chosen,
        partitions=partitioned,
        concurrency=concurrency,
        prefetch_ms=prefetch_ms,
        pool=pool,
        redis_url=obj.app.redis_url,
        prefix=obj.app.prefix,
        lease_seconds=lease_seconds,
        drain_timeout=drain_timeout,
        metrics_port=metrics_port,
        stall_seconds=stall_seconds,
        burst=burst,
        max_jobs=max_jobs,
    )
    keep_out_of_collections()
    code = asyncio.run(Worker(settings, tasks).run())
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # don't wait for a task thread that was handed back and still runs


def keep_out_of_collections() -> None:
    """Keep what the process loaded to start (kubeq, redis-py, the tasks' modules) out of
    every later garbage collection: it lives as long as the process, and each collection
    of the oldest generation would walk all of it again, a share of every short job's CPU
    (bench/README.md, "Where a drain's CPU goes"). The start-up's own garbage is collected
    first."""
    gc.collect()
    gc.freeze()
