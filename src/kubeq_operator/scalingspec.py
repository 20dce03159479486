"""``spec.scaling`` of a TaskQueue, and of each worker pool (``spec.pools[].scaling``, over
the TaskQueue's), parsed into a :class:`ScalingSpec` with errors that name the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubeq import defaults
from kubeq_operator.policy import ScalingSpec
from kubeq_operator.specfields import SpecError, get_field, get_int


def parse_scaling(
    s: Mapping[str, Any], concurrency: int, path: str = "spec.scaling"
) -> ScalingSpec:
    """The scaling settings at ``path``; ``concurrency`` is jobsPerReplica's default."""
    down = get_field(s, "scaleDown", path, dict, {})
    dpath = f"{path}.scaleDown"
    lo = get_int(s, "minReplicas", path, defaults.MIN_REPLICAS, 0)
    hi = get_int(s, "maxReplicas", path, defaults.MAX_REPLICAS, 0)
    if lo > hi:
        raise SpecError(f"{path}.minReplicas", f"must be <= maxReplicas ({lo} > {hi}); lower it")
    poll = get_field(s, "pollSeconds", path, float, float(defaults.POLL_SECONDS))
    if poll <= 0:
        raise SpecError(f"{path}.pollSeconds", f"must be > 0, got {poll}")
    up = get_field(s, "scaleUp", path, dict, {})
    upath = f"{path}.scaleUp"
    target_wait = get_field(s, "targetWaitSeconds", path, float)
    if target_wait is not None and target_wait <= 0:
        raise SpecError(f"{path}.targetWaitSeconds", f"must be > 0 seconds, got {target_wait}")
    up_step = get_field(up, "maxPodsPerStep", upath, int)
    if up_step is not None and up_step < 1:
        raise SpecError(f"{upath}.maxPodsPerStep", f"must be >= 1 (or unset), got {up_step}")
    fallback = get_field(s, "fallbackReplicas", path, int)
    if fallback is not None and not lo <= fallback <= hi:
        raise SpecError(
            f"{path}.fallbackReplicas",
            f"must be within minReplicas..maxReplicas ({lo}..{hi}), got {fallback}",
        )
    top = get_int(s, "fairTopKeys", path, defaults.FAIR_TOP, 0)
    if top > 100:
        raise SpecError(f"{path}.fairTopKeys", f"must be 0..100 (series per queue), got {top}")
    return ScalingSpec(
        target_wait_seconds=target_wait,
        wait_of_worst_key=get_field(s, "waitOfWorstKey", path, bool, False),
        fair_top_keys=top,
        scale_up_max_pods_per_step=up_step,
        scale_up_period_seconds=float(
            get_int(up, "periodSeconds", upath, defaults.SCALE_UP_PERIOD_SECONDS, 0)
        ),
        fallback_replicas=fallback,
        min_replicas=lo,
        max_replicas=hi,
        jobs_per_replica=get_int(s, "jobsPerReplica", path, concurrency, 1),
        activation_backlog=get_int(s, "activationBacklog", path, defaults.ACTIVATION_BACKLOG, 1),
        poll_seconds=poll,
        stabilization_seconds=float(
            get_int(down, "stabilizationSeconds", dpath, defaults.STABILIZATION_SECONDS, 0)
        ),
        max_pods_per_step=get_int(down, "maxPodsPerStep", dpath, defaults.MAX_PODS_PER_STEP, 1),
        period_seconds=float(get_int(down, "periodSeconds", dpath, defaults.PERIOD_SECONDS, 0)),
        idle_seconds_before_zero=float(
            get_int(s, "idleSecondsBeforeZero", path, defaults.IDLE_SECONDS_BEFORE_ZERO, 0)
        ),
    )
