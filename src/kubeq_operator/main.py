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
import socket
import sys
import urllib.parse

from kubeq_operator import metrics


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

    from kubeq_operator import handlers  # noqa: F401, PLC0415 - registers handlers; needs kopf

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
    )
    signal.signal(signal.SIGTERM, _exit_early)  # asyncio restored the default on exit
    return 0
