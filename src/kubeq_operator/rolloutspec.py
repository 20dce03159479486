"""``spec.rollout`` of a TaskQueue: how a change of the worker spec reaches the workers.

``Rolling`` (the default): the worker Deployment's pod template is patched and Kubernetes rolls
the pods; a stopping pod drains for its drainTimeout, then hands its jobs back.
``Versioned``: each worker spec is its own Deployment; an old version takes no new jobs and is
removed when its workers hold none, or after ``maxDrainSeconds`` (rollout.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubeq_operator.specfields import SpecError, get_field

ROLLING = "Rolling"
VERSIONED = "Versioned"
STRATEGIES = (ROLLING, VERSIONED)


@dataclass(frozen=True)
class RolloutSpec:
    strategy: str = ROLLING
    max_drain_seconds: int | None = None
    """Versioned: an old version is removed this long after it was retired, even while its
    workers still hold jobs (then handed back). None: it waits for them."""

    @property
    def versioned(self) -> bool:
        return self.strategy == VERSIONED


def parse_rollout(doc: Mapping[str, Any]) -> RolloutSpec:
    """``spec.rollout``; raises SpecError naming the bad field."""
    path = "spec.rollout"
    for key in doc:
        if key not in ("strategy", "maxDrainSeconds"):
            raise SpecError(f"{path}.{key}", "unknown field; use strategy and maxDrainSeconds")
    strategy = get_field(doc, "strategy", path, str, ROLLING)
    if strategy not in STRATEGIES:
        raise SpecError(f"{path}.strategy", f"must be Rolling or Versioned, got {strategy!r}")
    max_drain = get_field(doc, "maxDrainSeconds", path, int)
    if max_drain is not None and max_drain < 0:
        raise SpecError(f"{path}.maxDrainSeconds", f"must be >= 0, got {max_drain}")
    if max_drain is not None and strategy != VERSIONED:
        raise SpecError(
            f"{path}.maxDrainSeconds",
            "applies to strategy: Versioned only; set the strategy or remove it",
        )
    return RolloutSpec(strategy, max_drain)


ROLLING_UPDATE = RolloutSpec()
"""The default: a rolling update."""
