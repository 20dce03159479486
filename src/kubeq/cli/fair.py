"""``kubeq fair`` and ``kubeq stats QUEUE --by-key``: a fair queue's keys and their weights.

The table lists the fairness keys whose next job has waited longest (backlog, wait, weight),
with how many keys have ready jobs and how many jobs have no key (docs/fairness.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import click
from rich.table import Table

from kubeq import defaults
from kubeq.cli.audit import recorded
from kubeq.cli.output import Context, cells, console, emit_json, output_option, pass_ctx
from kubeq.store.fairness import UNKEYED, FairStats


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def by_key_table(fs: FairStats) -> Table:
    """The keys of one queue whose next job waited longest, oldest first."""
    title = f"{fs.queue}: {fs.active_keys} keys with ready jobs"
    if fs.scanned < fs.active_keys:
        title += f" (the first {fs.scanned} to be served looked at)"
    title += f"; {fs.unkeyed_backlog} ready jobs without a key"
    if fs.unkeyed_backlog:
        title += f" (oldest {_age(fs.unkeyed_wait)})"
    table = Table(title=title, title_justify="left")
    for column in ("key", "backlog", "oldest waiting", "weight"):
        table.add_column(column, justify="left" if column == "key" else "right")
    for k in fs.keys:
        table.add_row(*cells(k.key, k.backlog, _age(k.wait), f"{k.weight:g}"))
    return table


def show_by_key(obj: Context, queues: Sequence[str], top: int, output: str) -> None:
    """Print the by-key numbers of each queue named."""
    if not queues:
        raise click.UsageError("--by-key needs a queue: kubeq stats QUEUE --by-key")
    found = [obj.queue(q).fair_stats(top=top) for q in queues]
    if output == "json":
        emit_json(found)
        return
    for fs in found:
        console.print(by_key_table(fs))


def _parse_weight(text: str) -> tuple[str, float | None]:
    key, sep, value = text.rpartition("=")
    if not sep:
        raise click.BadParameter(f"{text!r}: give KEY=WEIGHT (e.g. acme=3)", param_hint="WEIGHTS")
    if value in ("", "-"):
        return key, None
    try:
        return key, float(value)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: the weight must be a number (KEY=3), or KEY= to remove it",
            param_hint="WEIGHTS",
        ) from None


@click.command()
@click.argument("queue")
@click.argument("weights", nargs=-1)
@click.option("--replace", is_flag=True, help="Drop every weight not given.")
@click.option("--top", default=defaults.FAIR_TOP, show_default=True, type=click.IntRange(1))
@output_option
@pass_ctx
def fair(
    obj: Context, queue: str, weights: Sequence[str], replace: bool, top: int, output: str
) -> None:
    """QUEUE's fairness keys: set weights (KEY=3; KEY= removes one; "=2" weighs the jobs
    without a key), or, without WEIGHTS, show the weights and the keys that waited longest."""
    q = obj.queue(queue)
    if weights or replace:
        parsed = dict(_parse_weight(w) for w in weights)
        try:
            q.set_weights(parsed, replace=replace)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="WEIGHTS") from None
        given = " ".join(weights) + (" --replace" if replace else "")
        recorded(obj, "queue.weights", f"{queue} {given}".strip(), 0, queue)
    current = q.weights()
    if output == "json":
        emit_json({"weights": current, "keys": q.fair_stats(top=top)})
        return
    shown = ", ".join(
        f"{'(no key)' if k == UNKEYED else k}={w:g}" for k, w in sorted(current.items())
    )
    click.echo(f"{queue}: weights {shown or 'none set (every key weighs 1)'}")
    console.print(by_key_table(q.fair_stats(top=top)))
