"""``kubeq operator``: run kopf with our handlers (``kubeq_operator.handlers``).

``main(argv)`` is what the library's CLI calls; ``python -m kubeq_operator`` does the same.
By default it serves every namespace, runs standalone (no kopf peering: periodic jobs are
de-duplicated in Redis, so two replicas are safe; ``--peering NAME`` enables kopf's
active/standby peering when its CRDs are installed), exposes kopf's liveness endpoint and
the Prometheus metrics.
"""

from __future__ import annotations

import argparse
import logging
import signal


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
        "--liveness",
        default="http://0.0.0.0:8080/healthz",
        help="kopf liveness endpoint URL ('' to disable)",
    )
    p.add_argument(
        "--metrics-port", type=int, default=9090, help="Prometheus /metrics port (0 disables)"
    )
    p.add_argument("--peering", default=None, help="kopf peering name (default: standalone)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true")
    return p


def _exit_early(signum: int, frame: object) -> None:
    raise SystemExit(0)  # stopped before kopf took over the signals: nothing to clean up


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    # kopf handles SIGTERM/SIGINT once its loop runs; until then (imports, login), a stop
    # request should still end the process cleanly, not kill it mid-way
    signal.signal(signal.SIGTERM, _exit_early)
    import kopf

    from . import handlers  # noqa: F401 - registers the handlers

    kopf.configure(debug=args.debug, verbose=args.verbose)
    if not (args.verbose or args.debug):
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    namespaces = [] if args.all_namespaces else list(args.namespace)
    kopf.run(
        standalone=args.peering is None,
        peering_name=args.peering,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=args.liveness or None,
        memo=kopf.Memo(metrics_port=args.metrics_port),
    )
    signal.signal(signal.SIGTERM, _exit_early)  # asyncio restored the default on exit
    return 0
