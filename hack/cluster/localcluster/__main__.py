"""Command line: ``python -m localcluster up|down|status`` (what ``make cluster-up`` runs)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from .cluster import ClusterError, down, status, up
from .paths import default_state_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcluster", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--state-dir", type=Path, default=None, help=f"default: {default_state_dir()}"
    )
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds to wait for up")
    parser.add_argument(
        "--node",
        choices=["agent", "real"],
        default="agent",
        help="agent: the test node agent (pods are local processes); "
        "real: containerd + kubelet + kube-proxy (state in .cluster-real/)",
    )
    args = parser.parse_args(argv)
    if args.command == "up":
        t0 = time.monotonic()
        try:
            info, started = up(args.state_dir, timeout=args.timeout, node=args.node)
        except ClusterError as e:
            print(f"cluster-up failed: {e}", file=sys.stderr)
            return 1
        verb = f"started in {time.monotonic() - t0:.1f}s" if started else "already running"
        print(f"local Kubernetes {info.version} {verb}: {info.server}")
        print(f"  export KUBECONFIG={info.kubeconfig}")
        print(f"  export PATH={info.bin_dir}:$PATH   # kubectl, helm, kubeconform")
        print(f"  logs: {info.layout.logs}")
        return 0
    if args.command == "down":
        stopped = down(args.state_dir, node=args.node)
        print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
        return 0
    st = status(args.state_dir or default_state_dir(args.node))
    print(json.dumps(st, indent=2))
    return 0 if st["ready"] else 3


if __name__ == "__main__":
    sys.exit(main())
