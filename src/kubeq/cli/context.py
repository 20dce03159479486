"""The context every ``kubeq`` command shares (the App built from the global options) and
``plain``, which makes text from Redis safe to print.

Kept apart from the table output (``output.py``, built on rich) so that ``kubeq worker``,
which prints only log lines, never imports rich.
"""

from __future__ import annotations

from typing import cast

import click

from kubeq.client.app import App
from kubeq.client.queues import Queue
from kubeq.store.keys import queues_key, validate_queue_name
from kubeq.store.partitions import registered


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
