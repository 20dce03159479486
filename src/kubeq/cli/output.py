"""What every ``kubeq`` command shares: the App built from the global options, the console,
and the two output forms (a table for people, ``-o json`` for scripts).

Tables never cut a job id: a person copies it into ``kubeq dlq show ID``. Piped output gets
a console wide enough for every row (unless COLUMNS says otherwise), and on a narrow
terminal the id column keeps its full width while prose columns fold.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click
import orjson
from rich.console import Console
from rich.table import Table

from kubeq.client.app import App
from kubeq.client.queues import Queue
from kubeq.store.keys import queues_key
from kubeq.store.partitions import registered

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("table", "json")


def make_console() -> Console:
    """A console for stdout; wide when piped so no row is cut."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(width=4096)
    return Console()


console = make_console()


class Context:
    """What every command shares: the App built from the global options."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.app = App(redis_url, prefix=prefix)

    def all_queues(self) -> list[str]:
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        names = cast("set[bytes]", self.app.redis.smembers(queues_key(self.app.prefix)))
        return sorted(n.decode() if isinstance(n, bytes) else str(n) for n in names)

    def queue(self, name: str) -> Queue:
        """The queue a command names: a partitioned queue (``orders``, whose jobs are in
        ``orders#0``..) with every partition the queue set lists, as the command knows no
        App's partitions; ``orders#3`` names one partition."""
        return Queue(self.app, name, registered(name, self.all_queues()))


pass_ctx = click.make_pass_decorator(Context)


def output_option(func: F) -> F:
    """``-o/--output table|json``, as kubectl users expect."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(OUTPUTS),
        default="table",
        show_default=True,
        help="table for people, json for scripts.",
    )(func)


def emit_json(value: Any) -> None:
    """Print ``value`` (dataclasses, lists, dicts) as indented JSON on stdout."""
    click.echo(orjson.dumps(_plain(value), option=orjson.OPT_INDENT_2).decode())


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def id_column(table: Table, ids: list[str], header: str = "id") -> None:
    """Add a job-id column that is never cut or wrapped."""
    width = max([len(header), *(len(i) for i in ids)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore")


def when(seconds: float | None) -> str:
    """A local time for tables ("" when unknown)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
