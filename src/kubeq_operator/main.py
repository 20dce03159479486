"""``kubeq operator``: run kopf with our handlers (``kubeq_operator.handlers``).

``main(argv)`` is what the library's CLI calls; ``python -m kubeq_operator`` does the same.
By default it serves every TaskQueue of every namespace; ``--namespace`` and ``--selector``
(a label selector the API server applies to the TaskQueue watch) limit it, which is how the
operator is sharded (docs/scaling.md). It runs standalone, exposes kopf's liveness endpoint
and the Prometheus metrics.

``--peering NAME`` runs it as one of several replicas with kopf's peering (its
ClusterKopfPeering/KopfPeering object NAME must exist): only the replica of the highest
priority works, the others wait. Replicas of equal priority would all pause (kopf's rule), so
by default the priority comes from the start time: the oldest replica is the active one, a
new replica (a restart, a rollout) joins as a standby instead of taking over, and each gets
random low digits so two started in the same second still differ. A standby takes over once
the active one's peering record is ``--peering-lifetime`` seconds old (it renews it every
5 to 10 s; a replica that stops cleanly removes it at once). A starting replica holds its
first TaskQueue pass ``--start-hold`` seconds (``kubeq_operator.peerhold``): kopf resumes a
replica at its first look at the peering object, which can come before a peer started at the
same instant has written its record, and both would work until they see each other.
"""

from __future__ import annotations

import argparse
import logging
import random
import re
import signal
import socket
import sys
import time
import urllib.parse

from kubeq_operator import metrics
from kubeq_operator.crd import GROUP, PLURAL


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="kubeq operator",
        description="Run the kubeq operator: TaskQueue -> worker Deployment, autoscaled.",
    )
    p.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="serve only this namespace (repeatable; globs allowed); default: all namespaces",
    )
    p.add_argument("-A", "--all-namespaces", action="store_true", help="serve all namespaces")
    p.add_argument(
        "-l",
        "--selector",
        default=None,
        help="serve only the TaskQueues matching this label selector (e.g. 'shard=a'; "
        "filtered by the API server); default: all",
    )
    p.add_argument(
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus /metrics port (0 disables)"
    )
    p.add_argument("--peering", default=None, help="kopf peering name (default: standalone)")
    p.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority (default: from the start time, so the oldest replica leads)",
    )
    p.add_argument(
        "--peering-lifetime",
        type=int,
        default=PEERING_LIFETIME,
        help="seconds after its last renewal that a silent active replica is taken over",
    )
    p.add_argument(
        "--start-hold",
        type=float,
        default=START_HOLD,
        help="with --peering: seconds a starting replica waits before its first TaskQueue pass, "
        "so that a peer started at the same time is seen first (0 disables)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true")
    return p


PEERING_LIFETIME = 15
"""Default ``--peering-lifetime``: a killed active replica is replaced within about this."""
START_HOLD = 5.0
"""Default ``--start-hold``: longer than two replicas' start-ups differ by on a loaded node."""
PRIORITY_EPOCH = 10**10
"""Seconds (year 2286) from which the start time is subtracted: earlier start, higher priority."""


def start_priority(now: float, jitter: int) -> int:
    """The peering priority of a replica started at ``now`` (unix seconds): older is higher,
    to the millisecond (two replicas started within one second are ordered too); ``jitter``
    (0..99999) tells apart replicas started in the same millisecond. At most about 10^18,
    an int64 in the peering object."""
    return (PRIORITY_EPOCH * 1000 - int(now * 1000)) * 100_000 + jitter


_KEY = r"(?:[a-z0-9A-Z.-]+/)?[a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?"
_VALUE = r"([a-zA-Z0-9]([-a-zA-Z0-9_.]*[a-zA-Z0-9])?)?"
_REQUIREMENT = re.compile(
    rf"\s*(!?{_KEY}|{_KEY}\s*(==?|!=)\s*{_VALUE}"
    rf"|{_KEY}\s+(in|notin)\s+\(\s*{_VALUE}(\s*,\s*{_VALUE})*\s*\))\s*"
)


def selector_error(selector: str) -> str | None:
    """Why ``selector`` is not a label selector the API server accepts, or None."""
    parts = re.split(r",(?![^(]*\))", selector)
    for part in parts:
        if not _REQUIREMENT.fullmatch(part):
            return (
                f"--selector {selector!r}: {part.strip()!r} is not a label requirement; use "
                "key=value, key!=value, key in (a,b), key notin (a,b), key or !key, "
                "joined by commas"
            )
    return None


def _port_in_use(url: str) -> tuple[str, int] | None:
    """(host, port) of the liveness URL when that port cannot be bound, else None."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 80
    try:
        with socket.create_server((host, port), reuse_port=False):
            return None
    except OSError:
        return host, port


def _exit_early(signum: int, frame: object) -> None:
    raise SystemExit(0)  # stopped before kopf took over the signals: nothing to clean up


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # kopf handles SIGTERM/SIGINT once its loop runs; until then (imports, login), a stop
    # request should still end the process cleanly, not kill it mid-way
    signal.signal(signal.SIGTERM, _exit_early)
    if args.selector is not None and (why := selector_error(args.selector)) is not None:
        print(f"kubeq operator: {why}", file=sys.stderr)
        return 2
    # Ports first, so that one already in use is one clear error and a non-zero exit, not a
    # start-up activity that kopf retries every 60 s with a traceback.
    if args.metrics_port:
        try:
            metrics.serve(args.metrics_port)
        except OSError as e:
            print(
                f"kubeq operator: cannot serve metrics on port {args.metrics_port} ({e.strerror}):"
                " stop what uses it, or pass --metrics-port with a free port (0 disables)",
                file=sys.stderr,
            )
            return 2
    if args.liveness and (taken := _port_in_use(args.liveness)) is not None:
        print(
            f"kubeq operator: cannot serve --liveness {args.liveness}: {taken[0]}:{taken[1]} is "
            "in use; pass --liveness with a free port ('' disables)",
            file=sys.stderr,
        )
        return 2
    # kopf (kubeq[operator]) after the ports and the early SIGTERM handler: its import takes
    # seconds on a loaded node, and a bad port must fail before it
    import kopf  # noqa: PLC0415 - optional extra (kubeq[operator])

    # handlers registers the handlers; both need kopf
    from kubeq_operator import handlers, peerhold  # noqa: F401, PLC0415

    kopf.configure(debug=args.debug, verbose=args.verbose)
    if not (args.verbose or args.debug):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = [] if args.all_namespaces else list(args.namespace)
    settings = kopf.OperatorSettings()
    settings.peering.lifetime = args.peering_lifetime
    if args.selector:
        settings.watching.label_selectors[GROUP, PLURAL] = args.selector
    priority = None
    if args.peering is not None:
        priority = args.priority
        if priority is None:
            priority = start_priority(time.time(), random.randrange(100_000))
        logging.getLogger("kubeq_operator").info(
            "peering %r with priority %d", args.peering, priority
        )
        peerhold.configure(args.start_hold)
    kopf.run(
        settings=settings,
        standalone=args.peering is None,
        peering_name=args.peering,
        priority=priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness or None,
    )
    signal.signal(signal.SIGTERM, _exit_early)  # asyncio restored the default on exit
    return 0
