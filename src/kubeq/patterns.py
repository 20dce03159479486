"""Debounce, singleton keys and batches: what a task or a call may ask, checked, and the one
decision a call's options come to (``Flow``), which ``client/flow.py`` sends to ``flow.lua``
(or, for a batch task's item, ``batch.lua``).

No I/O: the options are checked here, at ``@app.task`` and at each call, naming the bad field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubeq import defaults

SINGLETON_MODES = ("skip", "replace", "keep_latest", "cancel_running")
"""What a singleton key does with a new call (docs/patterns.md):
skip: the key's job waits or runs: the call returns it and changes nothing;
replace: the key's job has not started: it takes the call's arguments (one waiting job at most);
keep_latest: as replace, and one job of the key runs at a time (one runs, the newest waits);
cancel_running: as keep_latest, but a running job of the key is aborted (``job.abort()``)."""

KeyOption = str | Callable[..., str] | None
"""A key: a string, a function of the call's arguments returning one, or None (the task's
name)."""


MAX_BATCH = 10_000
"""The largest batch: a batch's items are read and settled in one script call each."""


@dataclass(frozen=True)
class Batch:
    """``@app.task(batch=kubeq.Batch(max_size=500, max_wait=2.0, key=...))``: each
    ``delay(item)`` is one item with its own job; the task runs with a list of up to
    ``max_size`` items, formed in Redis, once the batch is full or ``max_wait`` seconds after
    its first item (docs/patterns.md). ``key`` (a string, or a function of the item) keeps
    one batch per key; None: one per task."""

    max_size: int
    max_wait: float
    key: KeyOption = None

    def __post_init__(self) -> None:
        ok = isinstance(self.max_size, int) and not isinstance(self.max_size, bool)
        if not ok or not 1 <= self.max_size <= MAX_BATCH:
            raise ValueError(
                f"Batch max_size must be a whole number from 1 to {MAX_BATCH}, "
                f"got {self.max_size!r}"
            )
        _seconds("Batch max_wait", self.max_wait)
        check_key_option("Batch key", self.key)


@dataclass(frozen=True)
class Flow:
    """What flow.lua does with one call: its mode (``debounce`` or a singleton mode), its key
    (``<task>:<key>``) and, debounced, the window and the bound in ms (0: none). For a batch
    task's item (mode ``batch``, batch.lua): the wait in ms and the batch's size."""

    mode: str
    key: str
    window_ms: int = 0
    max_ms: int = 0


def _seconds(name: str, value: object) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be > 0 seconds (a finite number), got {value!r}")
    return float(value)  # type: ignore[arg-type]


def check_key_option(name: str, value: object) -> None:
    """A key option: None, a key string, or a function of the arguments."""
    if value is None or callable(value):
        return
    check_key(name, value)


def check_key(name: str, value: object) -> str:
    """A debounce or singleton key: a non-empty printable string of at most 200 characters."""
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= defaults.LIMIT_KEY_MAX
        or not value.isprintable()
    ):
        raise ValueError(
            f"{name} must be a non-empty printable string of at most {defaults.LIMIT_KEY_MAX} "
            f"characters (or, on the task, a function of its arguments returning one), "
            f"got {value!r}"
        )
    return value


def check_options(
    debounce: object,
    debounce_max: object,
    debounce_key: object,
    singleton: object,
    singleton_key: object,
) -> None:
    """Refuse what no call could use, naming the field: a window <= 0, a bound shorter than
    the window or without one, an unknown mode, a key without its pattern, both patterns."""
    if debounce is not None:
        window = _seconds("debounce", debounce)
        if debounce_max is not None and _seconds("debounce_max", debounce_max) < window:
            raise ValueError(
                f"debounce_max must be at least debounce ({window} s), got {debounce_max!r}"
            )
    elif debounce_max is not None:
        raise ValueError("debounce_max needs debounce=SECONDS (the quiet time before a run)")
    if singleton is not None and singleton not in SINGLETON_MODES:
        raise ValueError(
            f"singleton must be one of {', '.join(SINGLETON_MODES)}, got {singleton!r}"
        )
    if debounce is not None and singleton is not None:
        raise ValueError("give either debounce or singleton, not both (each owns its key)")
    if debounce_key is not None and debounce is None:
        raise ValueError("debounce_key needs debounce=SECONDS")
    if singleton_key is not None and singleton is None:
        raise ValueError(f"singleton_key needs singleton= one of {', '.join(SINGLETON_MODES)}")
    check_key_option("debounce_key", debounce_key)
    check_key_option("singleton_key", singleton_key)


def resolve_key(task: str, name: str, key: KeyOption, args: Any, kwargs: Any) -> str:
    """The key of one call: ``key`` itself, its value on the call's arguments, or the task's
    name; ValueError naming ``name`` when the function fails or returns no key."""
    if key is None:
        return task
    if callable(key):
        try:
            value = key(*args, **kwargs)
        except Exception as exc:
            raise ValueError(
                f"task {task!r}: its {name} function failed on these arguments: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        return check_key(f"task {task!r}: the key its {name} function returned", value)
    return check_key(name, key)


def pick(call_value: Any, task_value: Any) -> Any:
    """The call's option, or the task's when the call has none."""
    return task_value if call_value is None else call_value


def flow_of(
    task: str,
    args: Any,
    kwargs: Any,
    call: tuple[Any, Any, Any, Any, Any],
    opts: tuple[Any, Any, Any, Any, Any],
) -> Flow | None:
    """The flow of one call, from its (debounce, debounce_max, debounce_key, singleton,
    singleton_key) and its task's, the call's winning; None for an ordinary call. A call
    that sets a pattern brings its own key option (the task's applies to the task's)."""
    debounce, dmax, dkey, single, skey = (pick(c, t) for c, t in zip(call, opts, strict=True))
    if call[0] is not None:  # the call's own debounce: its own key and bound, or the defaults
        dkey, dmax = call[2], call[1]
    if call[3] is not None:
        skey = call[4]
    if single is not None and call[0] is not None and call[3] is None:
        single, skey = None, None  # a call's debounce wins over the task's singleton
    if debounce is not None and call[3] is not None and call[0] is None:
        debounce, dmax, dkey = None, None, None  # a call's singleton wins over a task's debounce
    check_options(debounce, dmax, dkey, single, skey)
    if debounce is not None:
        key = resolve_key(task, "debounce_key", dkey, args, kwargs)
        bound = 0 if dmax is None else max(1, int(dmax * 1000))
        return Flow("debounce", f"{task}:{key}", max(1, int(debounce * 1000)), bound)
    if single is not None:
        key = resolve_key(task, "singleton_key", skey, args, kwargs)
        return Flow(single, f"{task}:{key}")
    return None


def batch_flow(task: str, batch: Batch, args: Any, kwargs: Any) -> Flow:
    """The batch an item goes to: one positional argument (the item), no keyword arguments."""
    if len(args) != 1 or kwargs:
        raise ValueError(
            f"task {task!r} is a batch task: call it with one item, e.g. task.delay(event) "
            f"(got {len(args)} positional and {len(kwargs)} keyword arguments)"
        )
    key = resolve_key(task, "Batch key", batch.key, args, kwargs)
    return Flow("batch", f"{task}:{key}", max(1, int(batch.max_wait * 1000)), batch.max_size)
