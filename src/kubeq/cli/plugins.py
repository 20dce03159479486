"""Commands that other packages add to ``kubeq``, found through the ``kubeq.commands``
entry-point group.

``kubeq operator`` (from ``kubeq_operator``) and ``kubeq dashboard`` (from
``kubeq.dashboard``) are entry points of that group, so the command line never names the
packages that serve them. A plugin is imported only when its command is asked for (or
``kubeq --help`` lists it), so ``kubeq worker`` never imports the operator or the ASGI stack.
A plugin whose dependencies are not installed still shows, and says which extra installs it:
each is named after its extra (``pip install 'kubeq[dashboard]'``).
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

import click

GROUP = "kubeq.commands"
"""The entry-point group of kubeq's subcommands (``[project.entry-points."kubeq.commands"]``)."""


def found() -> dict[str, EntryPoint]:
    """The installed plugins, by command name."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def load(name: str, entry: EntryPoint) -> click.Command:
    """The command of one plugin, or a stand-in that explains why it cannot run here."""
    try:
        command = entry.load()
    except ImportError as exc:
        return _not_installed(name, exc)
    if not isinstance(command, click.Command):
        raise TypeError(f"entry point {entry.value!r} of {GROUP} is not a click command")
    return command


def _not_installed(name: str, exc: ImportError) -> click.Command:
    message = f"`kubeq {name}` is not installed ({exc}): pip install 'kubeq[{name}]'"

    def refuse() -> None:
        raise click.ClickException(message)

    return click.Command(
        name,
        callback=refuse,
        help=f"Not installed here: pip install 'kubeq[{name}]'.",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )


class PluginGroup(click.Group):
    """A click group that adds the installed plugins to its own commands."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *found()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = found().get(cmd_name)
        return load(cmd_name, entry) if entry is not None else None
