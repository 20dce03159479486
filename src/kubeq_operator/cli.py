"""``kubeq operator``: the click command that the ``kubeq`` CLI finds through its
``kubeq.commands`` entry-point group; it hands every argument to ``kubeq_operator.main``."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence

import click

from kubeq_operator.main import main


@click.command(
    context_settings={
        "ignore_unknown_options": True,
        "allow_extra_args": True,
        "help_option_names": [],  # `kubeq operator --help` shows the operator's own options
    }
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def operator(args: Sequence[str]) -> None:
    """Run the kubeq operator (needs `pip install kubeq[operator]`); --help for its options."""
    missing = [m for m in ("kopf", "kubernetes") if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"the operator is not installed (no {', '.join(missing)}): "
            "pip install 'kubeq[operator]'"
        )
    sys.exit(main(list(args)))
