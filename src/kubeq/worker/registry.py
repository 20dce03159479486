"""Which tasks a worker may run: the ones registered by the tasks module it was given.

This is the security boundary of the worker. A payload names a task; the worker looks the
name up in this registry and never imports or evaluates anything a payload says.
"""

from __future__ import annotations

import importlib
import signal
import sys
from typing import Any

from kubeq.client.app import App, Task
from kubeq.client.context import JobContext, reset_current, set_current
from kubeq.errors import SoftTimeLimitExceeded


def discover(module_name: str) -> dict[str, Task[Any, Any]]:
    """Import ``module_name`` and return its tasks by name.

    A task counts when the module holds it as an attribute, or when an App defined in the
    module registered it. Raises ImportError/ValueError with a message saying what to fix.
    """
    if "" not in sys.path and "." not in sys.path:
        sys.path.insert(0, "")  # `kubeq worker tasks` finds ./tasks.py, as celery does
    module = importlib.import_module(module_name)
    found: dict[str, Task[Any, Any]] = {}
    for value in vars(module).values():
        if isinstance(value, Task):
            found[value.name] = value
        elif isinstance(value, App):
            found.update(value.tasks)
    if not found:
        raise ValueError(
            f"module {module_name!r} registers no tasks: decorate its functions with "
            "@app.task (app = kubeq.App())"
        )
    return found


_child_registries: dict[str, dict[str, Task[Any, Any]]] = {}


def run_in_child(
    module_name: str,
    task: str,
    args: list[Any],
    kwargs: dict[str, Any],
    ctx: JobContext | None = None,
    clocks: tuple[float | None, float | None] = (None, None),
) -> Any:
    """Entry point of a process-pool child: run one registered task of ``module_name`` as
    job ``ctx`` (``kubeq.current_job()``). A soft timeout is a SIGALRM in this child, raised
    in the task as SoftTimeLimitExceeded (pebble kills the child at the hard timeout)."""
    registry = _child_registries.get(module_name)
    if registry is None:
        registry = _child_registries[module_name] = discover(module_name)
    if ctx is not None:
        ctx.start_clock(*clocks)
    soft = clocks[1]
    if soft is not None:
        signal.signal(signal.SIGALRM, _soft_timeout)
        signal.setitimer(signal.ITIMER_REAL, soft)
    token = set_current(ctx)
    try:
        return registry[task].func(*args, **kwargs)
    finally:
        if soft is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        reset_current(token)


def _soft_timeout(signum: int, frame: object) -> None:
    raise SoftTimeLimitExceeded("ran longer than its soft timeout (signalled in its process)")
