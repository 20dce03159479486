"""What every ``kubeq`` command shares: the App built from the global options, the console,
and the two output forms (a table for people, ``-o json`` for scripts).

Tables never cut a job id: a person copies it into ``kubeq dlq show ID``. Piped output gets
a console wide enough for every row (unless COLUMNS says otherwise), and on a narrow
terminal the id column keeps its full width while prose columns fold.

Whatever came from Redis (a task name, an error, a traceback, a queue name) is printed
through ``plain``: control characters become visible escapes, so a job cannot set the
terminal's title or clear the screen, and the console never reads Rich markup (an error
saying ``[/red]`` is shown as those characters).
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
from rich.text import Text

from kubeq.client.app import App
from kubeq.client.queues import Queue
from kubeq.store.keys import queues_key, validate_queue_name
from kubeq.store.partitions import registered

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("table", "json")


def make_console() -> Console:
    """A console for stdout; wide when piped so no row is cut. It reads no markup: what it
    prints may come from jobs (styled output is built from ``Text``)."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(width=4096, markup=False, highlight=False)
    return Console(markup=False, highlight=False)


console = make_console()


class Context:
    """What every command shares: the App built from the global options."""

    def __init__(self, redis_url: str | None, prefix: str) -> None:
        self.app = App(redis_url, prefix=prefix)

    def all_queues(self) -> list[str]:
        """Every registered queue name; a name that cannot be a queue (written to Redis by
        something else) is left out with a warning on stderr, so it hides no other queue."""
        # the cast: redis-py before 8.0 types a reply as "T | Awaitable[T]"
        names = cast("set[bytes]", self.app.redis.smembers(queues_key(self.app.prefix)))
        out = []
        for name in sorted(n.decode(errors="replace") for n in names):
            try:
                out.append(validate_queue_name(name))
            except ValueError:
                click.echo(
                    f"warning: {queues_key(self.app.prefix)} lists '{plain(name)}', "
                    "which is not a queue name: left out (SREM it to silence this)",
                    err=True,
                )
        return out

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
    click.echo(plain(orjson.dumps(_plain(value), option=orjson.OPT_INDENT_2).decode()))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


_NEUTRALISED = {
    c: f"\\u{c:04x}"
    for c in (
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        # bidi marks, embeddings, overrides and isolates ("Trojan Source"), line separators
        0x200E,
        0x200F,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
        0x2028,
        0x2029,
    )
    if c not in (0x09, 0x0A)
}


def plain(value: object) -> str:
    """``value`` as text safe to print on a terminal: control characters (ESC, BEL, CR,
    backspace, C1 codes, bidi overrides) become visible escapes such as ``\\u001b``; newlines
    and tabs stay. Every value that came from a job goes through here before it is printed.
    The escapes are JSON's, so JSON text stays valid JSON."""
    return str(value).translate(_NEUTRALISED)


def cells(*values: object) -> list[Text]:
    """Table cells from values that came from jobs: neutralised, and never read as markup."""
    return [Text(plain(v)) for v in values]


def id_column(table: Table, ids: list[str], header: str = "id") -> None:
    """Add a job-id column that is never cut or wrapped."""
    width = max([len(header), *(len(i) for i in ids)])
    table.add_column(header, no_wrap=True, min_width=width, overflow="ignore")


def when(seconds: float | None) -> str:
    """A local time for tables ("" when unknown)."""
    if not seconds:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))
