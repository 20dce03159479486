"""The public API stays where users find it: ``kubeq.__all__``, the import paths the README
and the docs show, the pytest plugin and the ``kubeq`` subcommands other packages serve.
A name that disappears or moves fails here, before it fails a user's import."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

import click
import pytest

import kubeq

PUBLIC = {
    "App",
    "Batch",
    "Call",
    "Chain",
    "ChainResult",
    "Chord",
    "ChordResult",
    "Group",
    "GroupResult",
    "Job",
    "JobAborted",
    "JobCancelled",
    "JobContext",
    "JobExpired",
    "JobFailed",
    "JobInfo",
    "JobNotFound",
    "KubeqError",
    "LeaseLost",
    "NotReplicated",
    "Queue",
    "QueueStats",
    "ResultTimeout",
    "Retry",
    "RetryPolicy",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "Task",
    "TaskOptions",
    "__version__",
    "chain",
    "chord",
    "current_job",
    "group",
    "read_stats",
    "JobSuspended",
    "StepTooLarge",
    "WaitTimeout",
    "asleep",
    "astep",
    "await_for",
    "sleep",
    "step",
    "wait_for",
}

DOCUMENTED = [
    ("kubeq.worker", "Worker"),
    ("kubeq.worker", "WorkerSettings"),
    ("kubeq.testing", "eager"),
    ("kubeq.testing", "drain"),
    ("kubeq.testing", "adrain"),
    ("kubeq.testing", "RedisServer"),
    ("kubeq.dashboard", "create_app"),
    ("kubeq.dashboard", "Config"),
    ("kubeq.cli", "cli"),
    ("kubeq.cli", "main"),
]


def test_kubeq_all_is_unchanged_and_every_name_resolves() -> None:
    assert set(kubeq.__all__) == PUBLIC
    for name in kubeq.__all__:
        assert getattr(kubeq, name) is not None, name


@pytest.mark.parametrize(("module", "name"), DOCUMENTED)
def test_documented_import_paths_resolve(module: str, name: str) -> None:
    assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


def test_the_pytest_plugin_entry_point_loads() -> None:
    (plugin,) = [ep for ep in entry_points(group="pytest11") if ep.name == "kubeq"]
    assert plugin.value == "kubeq.testing.pytest_plugin"
    assert hasattr(plugin.load(), "kubeq_redis")


def test_operator_and_dashboard_are_kubeq_subcommands_through_entry_points() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="kubeq.commands")}
    assert found == {
        "operator": "kubeq_operator.cli:operator",
        "dashboard": "kubeq.dashboard.cli:dashboard",
        "gateway": "kubeq.gateway.cli:gateway",
    }
    from kubeq.cli import cli

    ctx = click.Context(cli)
    assert {"operator", "dashboard", "gateway", "worker", "stats"} <= set(cli.list_commands(ctx))
    for name in ("operator", "dashboard", "gateway"):
        command = cli.get_command(ctx, name)
        assert isinstance(command, click.Command) and command.name == name


def test_a_plugin_whose_extra_is_missing_says_which_extra_installs_it() -> None:
    from importlib.metadata import EntryPoint

    from click.testing import CliRunner

    from kubeq.cli import plugins

    absent = EntryPoint("gpu", "kubeq_no_such_module.cli:gpu", plugins.GROUP)
    command = plugins.load("gpu", absent)
    result = CliRunner().invoke(command, ["--anything"])
    assert result.exit_code == 1
    assert "pip install 'kubeq[gpu]'" in result.output
    assert "kubeq_no_such_module" in result.output
