"""The ``kubeq`` group and its console entry point, with every subcommand loaded on demand.

A subcommand's module is imported only when that command runs (or ``kubeq --help`` lists
it): ``kubeq worker`` imports the worker and click, and never the table-printing stack
(rich) or the modules of the other commands, so a long-running worker carries none of them.
Every command reads the Redis URL from ``--redis-url`` or ``KUBEQ_REDIS_URL`` and the
password from ``KUBEQ_REDIS_PASSWORD``; a password is never printed.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import NoReturn

import click
import redis

from kubeq import defaults
from kubeq.cli.context import Context
from kubeq.cli.plugins import PluginGroup
from kubeq.errors import KubeqError
from kubeq.store import urls

BUILT_IN = {
    "stats": "kubeq.cli.commands:stats",
    "enqueue": "kubeq.cli.commands:enqueue",
    "purge": "kubeq.cli.commands:purge",
    "signal": "kubeq.cli.commands:signal",
    "pause": "kubeq.cli.commands:pause",
    "resume": "kubeq.cli.commands:resume",
    "worker": "kubeq.cli.worker:worker",
    "job": "kubeq.cli.jobs:job",
    "dlq": "kubeq.cli.jobs:dlq",
    "limit": "kubeq.cli.jobs:limit",
    "fair": "kubeq.cli.fair:fair",
    "schedule": "kubeq.cli.schedules:schedule",
    "jobs": "kubeq.cli.search:jobs",
    "audit": "kubeq.cli.audit:audit",
}
"""kubeq's own subcommands: name -> ``module:attribute`` of its click command."""


class KubeqGroup(PluginGroup):
    """The top group: kubeq's own subcommands, imported when asked for, then the plugins."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *BUILT_IN})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = BUILT_IN.get(cmd_name)
        if where is None or cmd_name in self.commands:
            return super().get_command(ctx, cmd_name)
        module, attr = where.split(":")
        command = getattr(importlib.import_module(module), attr)
        if not isinstance(command, click.Command):
            raise TypeError(f"{where} is not a click command")
        self.add_command(command, cmd_name)
        return command


@click.group(cls=KubeqGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--redis-url", envvar="KUBEQ_REDIS_URL", help="Redis URL [env KUBEQ_REDIS_URL].")
@click.option("--prefix", default=defaults.PREFIX, show_default=True, help="Key prefix.")
@click.version_option(package_name="kubeq")
@click.pass_context
def cli(ctx: click.Context, redis_url: str | None, prefix: str) -> None:
    """kubeq: a Redis task queue whose workers run on Kubernetes and scale themselves."""
    ctx.obj = Context(redis_url, prefix)


def main() -> None:
    """Console entry point: errors become one clear line, never a traceback with secrets."""
    try:
        cli(standalone_mode=True)
    except (KubeqError, ValueError) as exc:
        _fail(str(exc))
    except redis.ConnectionError as exc:
        url = urls.redact(urls.resolve_url(_url_in_use()))
        _fail(f"cannot reach Redis at {url}: {exc}")
    except redis.TimeoutError as exc:
        url = urls.redact(urls.resolve_url(_url_in_use()))
        _fail(f"Redis at {url} accepted the connection but did not answer in time ({exc})")


def _fail(message: str) -> NoReturn:
    """Print one error line (its text neutralised, never read as markup) and exit 1."""
    from rich.text import Text  # noqa: PLC0415 - the error path only: a worker never loads rich

    from kubeq.cli.output import console, plain  # noqa: PLC0415 - the same

    console.print(Text.assemble(("error:", "red"), " ", plain(message)))
    sys.exit(1)


def _url_in_use() -> str | None:
    """The Redis URL this invocation used: --redis-url if given, else the environment's."""
    args = sys.argv[1:]
    for i, arg in enumerate(args):
        if arg == "--redis-url" and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith("--redis-url="):
            return arg.split("=", 1)[1]
    return os.environ.get("KUBEQ_REDIS_URL")
