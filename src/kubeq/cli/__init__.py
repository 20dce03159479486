"""The ``kubeq`` command line."""

from kubeq.cli.root import cli, main

__all__ = ["cli", "main"]
