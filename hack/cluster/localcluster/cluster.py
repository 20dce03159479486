"""Start, inspect and stop the local control plane (etcd, kube-apiserver, controller manager,
scheduler) and its node as plain background processes. The node is the test node agent
(``node="agent"``, nodeagent.py) or a real one: containerd, the kubelet and kube-proxy
(``node="real"``, realnode.py).

This is what ``make cluster-up``/``cluster-down`` and the pytest plugin call. ``up`` returns
once ``/readyz`` is ok, the node is Ready (and untainted) and the ``default`` service account
exists; the processes keep running, recorded by pid files under ``.cluster/run``, until
``down`` stops them. Ports are chosen free on 127.0.0.1 each time, so several checkouts can run
their own cluster side by side.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from . import flags, pki, realnode
from .kubeapi import ApiError, Client, write_kubeconfig
from .paths import (
    CONTROL_PLANE_BINARIES,
    HACK_DIR,
    K8S_VERSION,
    Layout,
    bin_dir,
    default_state_dir,
    missing_binaries,
)
from .procs import ProcRef, spawn

NODE_NAME = "kubeq-local-node"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"  # the first address of SERVICE_CIDR: the `kubernetes` service
CONTROL_PLANE = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
#: Start order; ``down`` stops them in reverse (the node first, so it ends its pods).
COMPONENTS = (*CONTROL_PLANE, "nodeagent")
NODE_KINDS = ("agent", "real")


class ClusterError(RuntimeError):
    """The local cluster cannot be started (or is not running)."""


@dataclass(frozen=True)
class ClusterInfo:
    """What a client needs to use a running local cluster."""

    state_dir: str
    kubeconfig: str
    server: str
    node_name: str
    bin_dir: str
    version: str
    ports: dict[str, int]
    node: str = "agent"

    @property
    def layout(self) -> Layout:
        return Layout(Path(self.state_dir))

    def kubectl_env(self) -> dict[str, str]:
        """An environment running the built kubectl/helm against this cluster."""
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["PATH"] = self.bin_dir + os.pathsep + env.get("PATH", "")
        return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _locked(layout: Layout) -> Iterator[None]:
    """Serialise up/down of one state dir across processes."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with open(layout.lock_file, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _pid_file(layout: Layout, name: str) -> Path:
    return layout.run / f"{name}.pid"


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _node_kind(layout: Layout) -> str:
    with contextlib.suppress(OSError):
        return (layout.root / "node-kind").read_text().strip() or "agent"
    return "agent"


def _components(layout: Layout) -> tuple[str, ...]:
    if _node_kind(layout) == "real":
        return (*CONTROL_PLANE, *realnode.COMPONENTS)
    return COMPONENTS


def _wait(what: str, check: Callable[[], bool], timeout: float, layout: Layout) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in _components(layout):
            ref = ProcRef.load(_pid_file(layout, name))
            if ref is not None and not ref.alive():
                log = layout.logs / f"{name}.log"
                raise ClusterError(f"{name} exited while waiting for {what}; {log}:\n{_tail(log)}")
        try:
            if check():
                return
        except (OSError, ApiError, ValueError):
            pass
        time.sleep(0.25)
    raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")


def _https_ok(port: int, path: str) -> bool:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}{path}", context=ctx, timeout=2) as r:
        return bool(r.status == 200)


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=2) as r:
        return bool(r.status == 200)


def _read_info(layout: Layout) -> ClusterInfo | None:
    try:
        return ClusterInfo(**json.loads(layout.state_file.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _component_refs(layout: Layout) -> dict[str, ProcRef | None]:
    return {name: ProcRef.load(_pid_file(layout, name)) for name in _components(layout)}


def status(state_dir: Path | None = None) -> dict[str, object]:
    """Which components run, and whether the API server answers /readyz."""
    layout = Layout(state_dir or default_state_dir())
    refs = _component_refs(layout)
    result: dict[str, object] = {
        name: (f"running (pid {ref.pid})" if ref and ref.alive() else "stopped")
        for name, ref in refs.items()
    }
    info = _read_info(layout)
    ready = False
    if info is not None and all(r is not None and r.alive() for r in refs.values()):
        with contextlib.suppress(OSError, ValueError):
            code, _ = Client.from_kubeconfig(Path(info.kubeconfig), 5).request_raw("GET", "/readyz")
            ready = code == 200
    result["ready"] = ready
    result["kubeconfig"] = info.kubeconfig if info else None
    result["server"] = info.server if info else None
    return result


def running(state_dir: Path | None = None) -> ClusterInfo | None:
    """The running cluster of this state dir, if every component is alive and API ready."""
    layout = Layout(state_dir or default_state_dir())
    st = status(layout.root)
    return _read_info(layout) if st["ready"] else None


def up(
    state_dir: Path | None = None, timeout: float = 240.0, node: str = "agent"
) -> tuple[ClusterInfo, bool]:
    """Start the cluster unless it already runs; return (info, whether this call started it).

    ``node``: "agent" (the test node agent) or "real" (containerd + kubelet + kube-proxy,
    whose state dir defaults to ``.cluster-real/``)."""
    if node not in NODE_KINDS:
        raise ClusterError(f"node must be one of {', '.join(NODE_KINDS)}, got {node!r}")
    layout = Layout(state_dir or default_state_dir(node))
    with _locked(layout):
        existing = running(layout.root)
        if existing is not None and existing.node == node:
            return existing, False
        if existing is not None:
            raise ClusterError(
                f"a cluster with node={existing.node} runs in {layout.root}; stop it first "
                "(make cluster-down) or use another state dir"
            )
        if node == "real":
            try:
                realnode.check_host(layout, lambda root: running(root) is not None)
            except realnode.RealNodeError as e:
                raise ClusterError(str(e)) from e
        bins = bin_dir()
        missing = missing_binaries(bins)
        if missing:
            raise ClusterError(
                f"Kubernetes {K8S_VERSION} binaries missing in {bins}: {', '.join(missing)}. "
                "Build them with `make cluster-bin` (hack/cluster/build.sh)."
            )
        _stop_all(layout)
        try:
            info = _start(layout, bins, timeout, node)
        except BaseException:
            _stop_all(layout)
            raise
        return info, True


def down(state_dir: Path | None = None, node: str = "agent") -> list[str]:
    """Stop every component (and any pod process left behind); return what was stopped."""
    layout = Layout(state_dir or default_state_dir(node))
    with _locked(layout):
        return _stop_all(layout)


def _stop_all(layout: Layout) -> list[str]:
    stopped: list[str] = []
    refs = _component_refs(layout)
    real = _node_kind(layout) == "real"
    if real and all(r is not None and r.alive() for r in refs.values()):
        with contextlib.suppress(OSError, ValueError):
            realnode.drain(Client.from_kubeconfig(layout.kubeconfig, 5))
    for name in reversed(_components(layout)):
        ref = refs[name]
        if ref is not None:
            if ref.alive():
                # The node agent needs time to give its pods their grace period.
                ref.stop(grace=45.0 if name == "nodeagent" else 15.0)
                stopped.append(name)
            _pid_file(layout, name).unlink(missing_ok=True)
        if name == "nodeagent":
            stopped += _stop_pod_processes(layout)
    if real:
        stopped += realnode.teardown(layout, bin_dir())
    return stopped


def _stop_pod_processes(layout: Layout) -> list[str]:
    """Kill container processes a node agent left behind (e.g. after it was SIGKILLed)."""
    stopped = []
    for pid_file in sorted(layout.pod_pids.glob("*.pid")):
        ref = ProcRef.load(pid_file)
        if ref is not None and ref.alive():
            ref.stop(grace=5.0)
            stopped.append(f"pod process {ref.name}")
        pid_file.unlink(missing_ok=True)
    return stopped


def _start(layout: Layout, bins: Path, timeout: float, node: str) -> ClusterInfo:
    # A fresh cluster every time: etcd data, certificates and logs of the previous run go.
    for sub in (layout.etcd_data, layout.pki, layout.logs, layout.run, layout.pods):
        shutil.rmtree(sub, ignore_errors=True)
    layout.state_file.unlink(missing_ok=True)
    for d in (layout.pki, layout.logs, layout.pod_logs, layout.run, layout.pod_pids):
        d.mkdir(parents=True, exist_ok=True)
    layout.etcd_data.mkdir(mode=0o700, parents=True, exist_ok=True)
    (layout.root / "node-kind").write_text(node + "\n")
    node_name = realnode.NODE_NAME if node == "real" else NODE_NAME
    if node == "real":
        realnode.setup_host(layout)

    ports = {
        name: free_port()
        for name in ("etcd", "etcd-peer", "apiserver", "controller-manager", "scheduler")
    }
    server = f"https://127.0.0.1:{ports['apiserver']}"
    extra_ips = (realnode.NODE_IP,) if node == "real" else ()
    pki.generate(layout.pki, node_name, SERVICE_IP, extra_ips)
    p = layout.pki
    kubeconfigs = {}
    for user in ("admin", "controller-manager", "scheduler", "nodeagent", "kube-proxy"):
        path = layout.kubeconfig if user == "admin" else layout.kubeconfigs / f"{user}.kubeconfig"
        write_kubeconfig(
            path,
            server=server,
            ca_file=p / "ca.crt",
            cert_file=p / f"{user}.crt",
            key_file=p / f"{user}.key",
            user=user,
        )
        kubeconfigs[user] = str(path)

    info = ClusterInfo(
        state_dir=str(layout.root),
        kubeconfig=str(layout.kubeconfig),
        server=server,
        node_name=node_name,
        bin_dir=str(bins),
        version=K8S_VERSION,
        ports=ports,
        node=node,
    )

    def run(name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        spawn(
            name,
            argv,
            log_file=layout.logs / f"{name}.log",
            pid_file=_pid_file(layout, name),
            env=env,
        )

    etcd_url = f"http://127.0.0.1:{ports['etcd']}"
    peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
    run("etcd", flags.etcd(bins, layout.etcd_data, etcd_url, peer_url))
    _wait("etcd /health", lambda: _http_ok(f"{etcd_url}/health"), 60, layout)

    if node == "real":  # reachable from pods; the `kubernetes` Service gets its endpoint
        address_args = realnode.apiserver_args(p)
    else:  # Endpoints may not hold loopback addresses, so `kubernetes` has none
        address_args = [
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            "--endpoint-reconciler-type=none",
        ]
    run("kube-apiserver", flags.apiserver(
        bins, etcd_url, address_args, ports["apiserver"], p, SERVICE_CIDR
    ))  # fmt: skip
    admin = Client.from_kubeconfig(layout.kubeconfig, 5)
    _wait("kube-apiserver /readyz", lambda: admin.request_raw("GET", "/readyz")[0] == 200,
          timeout, layout)  # fmt: skip

    cm_kc = kubeconfigs["controller-manager"]
    run("kube-controller-manager", flags.controller_manager(
        bins, cm_kc, ports["controller-manager"], p, SERVICE_CIDR
    ))  # fmt: skip
    sched_kc = kubeconfigs["scheduler"]
    run("kube-scheduler", flags.scheduler(bins, sched_kc, ports["scheduler"]))
    if node == "real":
        real_kubeconfigs = {"kubelet": kubeconfigs["nodeagent"], **kubeconfigs}
        try:
            realnode.start(layout, bins, real_kubeconfigs, p, run,
                           lambda what, check, t: _wait(what, check, t, layout))  # fmt: skip
        except realnode.RealNodeError as e:
            raise ClusterError(str(e)) from e
    else:
        _start_nodeagent(layout, kubeconfigs["nodeagent"], ports["apiserver"], run)

    _wait("kube-controller-manager /healthz",
          lambda: _https_ok(ports["controller-manager"], "/healthz"), timeout, layout)  # fmt: skip
    _wait("kube-scheduler /healthz", lambda: _https_ok(ports["scheduler"], "/healthz"), timeout,
          layout)  # fmt: skip
    _wait(f"node {node_name} Ready", lambda: node_ready(admin, node_name), timeout, layout)
    _wait("service account default/default",
          lambda: bool(admin.get("/api/v1/namespaces/default/serviceaccounts/default")),
          timeout, layout)  # fmt: skip
    layout.state_file.write_text(json.dumps(asdict(info), indent=2) + "\n")
    return info


def _start_nodeagent(
    layout: Layout, kubeconfig: str, apiserver_port: int, run: Callable[..., None]
) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HACK_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    run("nodeagent", [
        sys.executable, "-m", "localcluster.nodeagent",
        f"--kubeconfig={kubeconfig}",
        f"--node-name={NODE_NAME}",
        f"--state-dir={layout.root}",
        f"--apiserver-port={apiserver_port}",
        f"--venv-bin={Path(sys.executable).parent}",
    ], env=env)  # fmt: skip


def node_ready(client: Client, node_name: str) -> bool:
    """The node reports Ready and the node lifecycle controller has lifted its not-ready taint."""
    node = client.get(f"/api/v1/nodes/{node_name}")
    conditions = node.get("status", {}).get("conditions") or []
    ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    taints = node.get("spec", {}).get("taints") or []
    return ready and not any(t["key"].startswith("node.kubernetes.io/") for t in taints)


def check_binaries() -> list[str]:
    """The names of missing control-plane binaries (for callers that only need those)."""
    return [b for b in missing_binaries() if b in CONTROL_PLANE_BINARIES]
