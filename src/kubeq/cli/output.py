"""What the table-printing ``kubeq`` commands share: the console and the two output forms (a
table for people, ``-o json`` for scripts). The App every command shares and ``plain`` are in
``context.py`` (re-exported here), which ``kubeq worker`` imports without rich.

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
from typing import Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kubeq.cli.context import Context, pass_ctx, plain

__all__ = [
    "OUTPUTS",
    "Context",
    "cells",
    "console",
    "emit_json",
    "id_column",
    "make_console",
    "output_option",
    "pass_ctx",
    "plain",
    "when",
]

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("table", "json")


def make_console() -> Console:
    """A console for stdout; wide when piped so no row is cut. It reads no markup: what it
    prints may come from jobs (styled output is built from ``Text``)."""
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(width=4096, markup=False, highlight=False)
    return Console(markup=False, highlight=False)


console = make_console()


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
