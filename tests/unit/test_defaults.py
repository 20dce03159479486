"""The CRD's ``default:`` values, the CLI's option defaults and the operator's parser all say
what ``kubeq.defaults`` says.

An API server applies the CRD's defaults before the operator sees an object; the parser
applies ``kubeq.defaults`` to objects created before a default existed; the CLI starts a
worker with its click defaults. If any of them drifts, the same TaskQueue behaves differently
depending on its age or on how its worker was started. Every ``default:`` in the CRD must be
listed in ``CRD_DEFAULTS`` (a new one fails until it is), and each must equal its constant.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from kubeq import defaults
from kubeq.cli import commands as cli
from kubeq_operator import crd
from kubeq_operator.policy import ScalingSpec
from kubeq_operator.spec import parse

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "manifests" / "crd" / f"{crd.CRD_NAME}.yaml"
CHART_CRD_FILE = ROOT / "charts" / "kubeq" / "crds" / f"{crd.CRD_NAME}.yaml"

EMPTY_OBJECT: dict[str, Any] = {}
"""``default: {}`` on an object: it exists so that its own properties' defaults apply."""

CRD_DEFAULTS: dict[str, Any] = {
    "spec.redis.secretRef.key": defaults.PASSWORD_SECRET_KEY,
    "spec.redis.prefix": defaults.PREFIX,
    "spec.queues": [defaults.QUEUE],
    "spec.partitions": defaults.PARTITIONS,
    "spec.worker.concurrency": defaults.CONCURRENCY,
    "spec.worker.pool": defaults.POOL,
    "spec.worker.terminationGracePeriodSeconds": defaults.TERMINATION_GRACE_SECONDS,
    "spec.worker.metricsPort": defaults.WORKER_METRICS_PORT,
    "spec.scaling": EMPTY_OBJECT,
    "spec.scaling.minReplicas": defaults.MIN_REPLICAS,
    "spec.scaling.maxReplicas": defaults.MAX_REPLICAS,
    "spec.scaling.activationBacklog": defaults.ACTIVATION_BACKLOG,
    "spec.scaling.pollSeconds": defaults.POLL_SECONDS,
    "spec.scaling.idleSecondsBeforeZero": defaults.IDLE_SECONDS_BEFORE_ZERO,
    "spec.scaling.scaleDown": EMPTY_OBJECT,
    "spec.scaling.scaleUp": EMPTY_OBJECT,
    "spec.scaling.scaleUp.periodSeconds": defaults.SCALE_UP_PERIOD_SECONDS,
    "spec.scaling.scaleDown.stabilizationSeconds": defaults.STABILIZATION_SECONDS,
    "spec.scaling.scaleDown.maxPodsPerStep": defaults.MAX_PODS_PER_STEP,
    "spec.scaling.scaleDown.periodSeconds": defaults.PERIOD_SECONDS,
}
"""CRD path (properties joined by dots, ``[]`` for an array's items) -> the code's default."""


def _schema() -> dict[str, Any]:
    doc = yaml.safe_load(CRD_FILE.read_text())
    assert doc["spec"]["group"] == crd.GROUP
    assert doc["spec"]["names"]["plural"] == crd.PLURAL
    assert doc["spec"]["names"]["kind"] == crd.KIND
    (version,) = [v for v in doc["spec"]["versions"] if v["name"] == crd.VERSION]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in (node.get("properties") or {}).items():
        yield from _walk(child, f"{path}.{name}" if path else name)
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[]")


def _crd_defaults() -> dict[str, Any]:
    return {path: node["default"] for path, node in _walk(_schema(), "") if "default" in node}


def test_the_chart_ships_the_same_crd() -> None:
    assert CHART_CRD_FILE.read_text() == CRD_FILE.read_text()


def test_every_crd_default_has_a_constant() -> None:
    found = _crd_defaults()
    assert found, "no default: found in the CRD schema (did its layout change?)"
    unmapped = sorted(set(found) - set(CRD_DEFAULTS))
    assert not unmapped, (
        f"the CRD has defaults with no kubeq.defaults constant: {unmapped}; add them to "
        "kubeq/defaults.py and to CRD_DEFAULTS in this test"
    )
    stale = sorted(set(CRD_DEFAULTS) - set(found))
    assert not stale, f"CRD_DEFAULTS lists paths that have no default: in the CRD: {stale}"


@pytest.mark.parametrize("path", sorted(CRD_DEFAULTS))
def test_crd_default_equals_the_code(path: str) -> None:
    found = _crd_defaults()
    if path not in found:
        pytest.fail(f"{path} has no default: in {CRD_FILE.name}")
    value, expected = found[path], CRD_DEFAULTS[path]
    assert value == expected, (
        f"{CRD_FILE.name}: {path} defaults to {value!r}, kubeq.defaults says {expected!r}; "
        "change one of them (and `make manifests` after editing the chart's CRD)"
    )
    assert type(value) is type(expected) or {type(value), type(expected)} == {int, float}


def _apply_crd_defaults(obj: Any, node: dict[str, Any]) -> Any:
    """Structural defaulting as the API server does it: missing fields that have a default."""
    if isinstance(obj, dict):
        for name, child in (node.get("properties") or {}).items():
            if name not in obj and "default" in child:
                obj[name] = copy.deepcopy(child["default"])
            if name in obj:
                obj[name] = _apply_crd_defaults(obj[name], child)
    elif isinstance(obj, list) and isinstance(node.get("items"), dict):
        return [_apply_crd_defaults(item, node["items"]) for item in obj]
    return obj


MINIMAL = {
    "redis": {"url": "redis://r:6379/0", "secretRef": {"name": "redis"}},
    "worker": {"image": "img", "tasks": "shop.tasks"},
}


def test_parser_defaults_equal_what_the_api_server_applies() -> None:
    """An object the API server defaulted and an old one it did not parse the same."""
    spec_schema = _schema()["properties"]["spec"]
    defaulted = _apply_crd_defaults(copy.deepcopy(MINIMAL), spec_schema)
    assert defaulted != MINIMAL  # the defaulting did something
    assert parse(defaulted) == parse(copy.deepcopy(MINIMAL))


def test_parser_and_dataclasses_use_the_defaults_module() -> None:
    parsed = parse(copy.deepcopy(MINIMAL))
    assert parsed.scaling == ScalingSpec()  # jobsPerReplica defaults to the concurrency
    assert parsed.scaling.jobs_per_replica == defaults.CONCURRENCY
    assert parsed.queues == (defaults.QUEUE,)
    assert parsed.redis.prefix == defaults.PREFIX
    assert parsed.redis.secret_ref is not None
    assert parsed.redis.secret_ref.key == defaults.PASSWORD_SECRET_KEY
    w = parsed.worker
    assert (w.concurrency, w.pool) == (defaults.CONCURRENCY, defaults.POOL)
    assert w.termination_grace_period_seconds == defaults.TERMINATION_GRACE_SECONDS
    assert w.drain_timeout == defaults.TERMINATION_GRACE_SECONDS - defaults.DRAIN_MARGIN_SECONDS


# -- the CLI -------------------------------------------------------------------------------


def _option(command: click.Command, flag: str) -> click.Parameter:
    for param in command.params:
        if flag in getattr(param, "opts", ()):
            return param
    raise AssertionError(f"`kubeq {command.name}` has no {flag} option")


CLI_DEFAULTS = [
    ((), "--prefix", defaults.PREFIX),
    (("worker",), "--concurrency", defaults.CONCURRENCY),
    (("worker",), "--pool", defaults.POOL),
    (("worker",), "--lease", defaults.LEASE_SECONDS),
    (("worker",), "--drain-timeout", defaults.DRAIN_TIMEOUT),
    (("worker",), "--stall-seconds", defaults.STALL_SECONDS),
    (("worker",), "--log-level", defaults.LOG_LEVEL),
]


@pytest.mark.parametrize(("command_path", "flag", "expected"), CLI_DEFAULTS)
def test_cli_option_default_equals_the_code(
    command_path: tuple[str, ...], flag: str, expected: Any
) -> None:
    command: click.Command = cli.cli
    for name in command_path:
        assert isinstance(command, click.Group)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"no `kubeq {name}` command"
        command = found
    default = _option(command, flag).default
    assert default == expected, (
        f"`kubeq {' '.join(command_path)} {flag}` defaults to {default!r}, "
        f"kubeq.defaults says {expected!r}"
    )
