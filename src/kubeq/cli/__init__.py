"""The ``kubeq`` command line."""

from kubeq.cli.commands import cli, main

__all__ = ["cli", "main"]
