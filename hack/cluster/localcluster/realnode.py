"""The real node: containerd, the kubelet and kube-proxy joining the local control plane.

The node agent (nodeagent.py) runs pods as local processes: fast, but no images, no
securityContext, no probes, no volumes, no Services and no ``kubectl logs``. This module runs
what a cluster node really runs, from Debian's packages (containerd 1.6, runc, the CNI
plugins, catatonit as the pause image) and the kubelet and kube-proxy built from the pinned
Kubernetes module (hack/cluster/build.sh).

Networking: pods sit on the bridge ``kubeq0`` (``POD_CIDR``); the bridge's own address
``NODE_IP`` is the node's InternalIP and the API server's advertised address, so the
``kubernetes`` Service (through kube-proxy) reaches it from pods. Pod traffic never leaves
the machine: the bridge does no masquerading and an iptables rule drops anything from the
pod range to another network.

One real node per machine (a fixed bridge, fixed kubelet ports, machine-wide iptables). The
kubelet sets three host sysctls (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops) and
this module sets ip_forward and bridge-nf-call-iptables; ``teardown`` restores every value it
found.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .kubeapi import ApiError, Client
from .paths import HACK_DIR, Layout

NODE_NAME = "kubeq-real-node"
POD_CIDR = "10.244.0.0/24"
NODE_IP = "10.244.0.1"
BRIDGE = "kubeq0"
COMPONENTS = ("containerd", "kubelet", "kube-proxy")
KUBELET_ROOT = Path("/var/lib/kubeq-kubelet")
CONTAINERD_RUN = Path("/run/kubeq-containerd")
CNI_STATE = Path("/run/kubeq-cni")
SOCKET = CONTAINERD_RUN / "containerd.sock"
OWNER = Path("/run/kubeq-realnode.owner")  # the state dir of the real node running here
PAUSE_SCRIPT = HACK_DIR.parent / "image" / "pause.sh"
PODMAN = HACK_DIR.parent / "image" / "podman.sh"
ISOLATE_CHAIN = "KUBEQ-POD-ISOLATION"
SYSCTLS = (
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/ipv4/ip_forward",
    "net/bridge/bridge-nf-call-iptables",
)
#: The Debian packages of the real node (`make cluster-up NODE=real` installs them).
NODE_DEBS = tuple((HACK_DIR / "node-debs.txt").read_text().split())
NEEDED = {
    "containerd": "containerd",
    "runc": "runc",
    "ctr": "containerd",
    "catatonit": "catatonit",
    "iptables": "iptables",
    "conntrack": "conntrack",
    "podman": "podman",
}

Run = Callable[[str, list[str]], None]


class RealNodeError(RuntimeError):
    """The machine cannot run the real node (with what to do about it)."""


def check_host(layout: Layout, alive: Callable[[Path], bool]) -> None:
    """Fail early, naming what is missing and the command that installs it, or the other
    checkout whose real node runs on this machine (``alive(state_dir)`` tells)."""
    with contextlib.suppress(OSError):
        owner = Path(OWNER.read_text().strip())
        if owner != layout.root and alive(owner):
            raise RealNodeError(
                f"the real node of {owner} runs on this machine (one per machine): stop it "
                f"with `make cluster-down NODE=real` there"
            )
    if os.geteuid() != 0:
        raise RealNodeError("the real node needs root (containerd, kubelet and iptables)")
    missing = sorted({pkg for exe, pkg in NEEDED.items() if shutil.which(exe) is None})
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("containernetworking-plugins")
    if missing:
        raise RealNodeError(
            f"Debian packages missing for the real node: {', '.join(missing)}; "
            "`make cluster-up NODE=real` installs them (hack/cluster/node-deps.sh)"
        )


def apiserver_args(pki: Path) -> list[str]:
    """kube-apiserver flags that make the control plane reachable from pods and the kubelet."""
    return [
        "--bind-address=0.0.0.0",
        f"--advertise-address={NODE_IP}",
        f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
        # No DNS name of the node resolves here; kubectl logs/exec go to the node's IP.
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check)


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name


def setup_host(layout: Layout) -> None:
    """Bridge, sysctls and the isolation rule; records the sysctls found (once) for teardown."""
    OWNER.write_text(f"{layout.root}\n")
    saved = layout.root / "realnode-sysctls.json"
    if not saved.exists():
        found = {}
        for name in SYSCTLS:
            with contextlib.suppress(OSError):
                found[name] = _sysctl_path(name).read_text().strip()
        saved.write_text(json.dumps(found, indent=2) + "\n")
    _sysctl_path("net/ipv4/ip_forward").write_text("1\n")
    _sysctl_path("net/bridge/bridge-nf-call-iptables").write_text("1\n")
    if _sh("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _sh("ip", "link", "add", BRIDGE, "type", "bridge")
    _sh("ip", "addr", "replace", f"{NODE_IP}/24", "dev", BRIDGE)
    _sh("ip", "link", "set", BRIDGE, "up")
    # Pods talk to the node and to each other, never to another network.
    _sh("iptables", "-N", ISOLATE_CHAIN, check=False)
    _sh("iptables", "-F", ISOLATE_CHAIN)
    _sh("iptables", "-A", ISOLATE_CHAIN, "-s", POD_CIDR, "!", "-d", POD_CIDR, "-j", "DROP")
    if _sh("iptables", "-C", "FORWARD", "-j", ISOLATE_CHAIN, check=False).returncode != 0:
        _sh("iptables", "-I", "FORWARD", "1", "-j", ISOLATE_CHAIN)
    shutil.rmtree(CNI_STATE, ignore_errors=True)


def write_configs(layout: Layout, pki: Path, kubeconfigs: dict[str, str]) -> dict[str, Path]:
    """containerd, CNI, kubelet and kube-proxy configuration files under the state dir."""
    conf = layout.root / "realnode"
    shutil.rmtree(conf, ignore_errors=True)
    (conf / "cni").mkdir(parents=True)
    containerd_root = layout.root / "containerd"
    containerd = conf / "containerd.toml"
    containerd.write_text(f"""version = 2
root = "{containerd_root}"
state = "{CONTAINERD_RUN}"
[grpc]
  address = "{SOCKET}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image()}"
  # no CAP_SYS_RESOURCE on these VMs: never lower a process's OOM score below ours
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{conf / "cni"}"
""")
    (conf / "cni" / "10-kubeq.conflist").write_text(
        json.dumps(
            {
                "cniVersion": "1.0.0",
                "name": "kubeq",
                "plugins": [
                    {
                        "type": "bridge",
                        "bridge": BRIDGE,
                        "isGateway": True,
                        "ipMasq": False,
                        "hairpinMode": True,
                        "ipam": {
                            "type": "host-local",
                            "dataDir": str(CNI_STATE),
                            "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                            "routes": [{"dst": "0.0.0.0/0"}],
                        },
                    },
                    {"type": "portmap", "capabilities": {"portMappings": True}},
                ],
            },
            indent=2,
        )
    )
    kubelet = conf / "kubelet.json"
    kubelet.write_text(
        json.dumps(
            {
                "apiVersion": "kubelet.config.k8s.io/v1beta1",
                "kind": "KubeletConfiguration",
                # This VM mounts cgroup v1 (hybrid); kubelet 1.35 refuses it unless told.
                "failCgroupV1": False,
                "cgroupDriver": "cgroupfs",
                "containerRuntimeEndpoint": f"unix://{SOCKET}",
                "address": NODE_IP,
                "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1",
                "authentication": {
                    "anonymous": {"enabled": False},
                    "webhook": {"enabled": True},
                    "x509": {"clientCAFile": str(pki / "ca.crt")},
                },
                "authorization": {"mode": "Webhook"},
                "clusterDomain": "cluster.local",
                "failSwapOn": False,
                "resolvConf": "/etc/resolv.conf",
                # Images come from `ctr import`, not a registry: never collect them.
                "imageGCHighThresholdPercent": 100,
                "imageGCLowThresholdPercent": 99,
                "evictionHard": {
                    "memory.available": "100Mi",
                    "nodefs.available": "2%",
                    "imagefs.available": "2%",
                },
                "serializeImagePulls": False,
                "maxPods": 60,
                "podCIDR": POD_CIDR,
            },
            indent=2,
        )
    )
    proxy = conf / "kube-proxy.json"
    proxy.write_text(
        json.dumps(
            {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": kubeconfigs["kube-proxy"]},
                "mode": "iptables",
                "clusterCIDR": POD_CIDR,
                "hostnameOverride": NODE_NAME,
                "bindAddress": NODE_IP,
                "healthzBindAddress": "127.0.0.1:10256",
                "metricsBindAddress": "127.0.0.1:10249",
                # Leave the host's conntrack sysctls alone.
                "conntrack": {
                    "maxPerCore": 0,
                    "min": 0,
                    "tcpEstablishedTimeout": "0s",
                    "tcpCloseWaitTimeout": "0s",
                },
            },
            indent=2,
        )
    )
    return {"containerd": containerd, "kubelet": kubelet, "kube-proxy": proxy}


def pause_image() -> str:
    return _sh("bash", str(PAUSE_SCRIPT), "--ref").stdout.strip()


def ctr(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return _sh("ctr", "--address", str(SOCKET), "--namespace", "k8s.io", *args, check=check)


def load_image(ref: str) -> None:
    """Copy one image from kubeq's podman store into the node's containerd (one per save:
    ``podman save A B`` writes only A)."""
    save = subprocess.Popen(
        [str(PODMAN), "save", "--format", "docker-archive", ref], stdout=subprocess.PIPE
    )
    assert save.stdout is not None
    imp = subprocess.run(
        ["ctr", "--address", str(SOCKET), "--namespace", "k8s.io", "images", "import", "-"],
        stdin=save.stdout,
        capture_output=True,
        text=True,
        check=False,
    )
    save.stdout.close()
    if save.wait() != 0 or imp.returncode != 0:
        raise RealNodeError(f"loading {ref} into containerd failed: {imp.stderr[-2000:]}")


def start(
    layout: Layout,
    bins: Path,
    kubeconfigs: dict[str, str],
    pki: Path,
    run: Run,
    wait: Callable[[str, Callable[[], bool], float], None],
) -> None:
    """containerd (with the pause image), then the kubelet and kube-proxy."""
    configs = write_configs(layout, pki, kubeconfigs)
    pause = _sh("bash", str(PAUSE_SCRIPT), check=False)
    if pause.returncode != 0:
        raise RealNodeError(f"building the pause image failed: {pause.stderr[-2000:]}")
    run("containerd", ["containerd", "--config", str(configs["containerd"])])
    wait("containerd", lambda: ctr("version", check=False).returncode == 0, 60)
    load_image(pause_image())
    KUBELET_ROOT.mkdir(parents=True, exist_ok=True)
    run("kubelet", [
        str(bins / "kubelet"),
        f"--config={configs['kubelet']}",
        f"--kubeconfig={kubeconfigs['kubelet']}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={NODE_IP}",
        f"--root-dir={KUBELET_ROOT}",
        "--v=1",
    ])  # fmt: skip
    run("kube-proxy", [str(bins / "kube-proxy"), f"--config={configs['kube-proxy']}", "--v=1"])


def _mounts_under(prefixes: Sequence[Path]) -> list[str]:
    points = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        point = line.split()[1].replace("\\040", " ")
        if any(point == str(p) or point.startswith(f"{p}/") for p in prefixes):
            points.append(point)
    return sorted(points, key=len, reverse=True)


def drain(admin: Client, timeout: float = 60.0) -> None:
    """Cordon the node and delete every pod, so the kubelet stops them the normal way."""
    with contextlib.suppress(ApiError, OSError):
        admin.patch(
            f"/api/v1/nodes/{NODE_NAME}",
            {"spec": {"unschedulable": True}},
            "application/merge-patch+json",
        )
        for pod in admin.get("/api/v1/pods").get("items", []):
            meta = pod["metadata"]
            with contextlib.suppress(ApiError):
                admin.delete(
                    f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                    {"gracePeriodSeconds": 0},
                )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = ctr("tasks", "list", "--quiet", check=False)
        if tasks.returncode != 0 or not tasks.stdout.strip():
            return
        time.sleep(0.5)


def _remove_kubelet_chains() -> None:
    """The chains the kubelet adds (kube-proxy --cleanup leaves them): KUBE-FIREWALL and its
    jumps, KUBE-KUBELET-CANARY, KUBE-IPTABLES-HINT; in IPv4 and IPv6."""
    for tool in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle"):
            rules = _sh(tool, "-t", table, "-S", check=False).stdout.splitlines()
            for rule in rules:
                if rule.startswith("-A ") and "-j KUBE-FIREWALL" in rule:
                    _sh(tool, "-t", table, "-D", *rule.split()[1:], check=False)
            for chain in ("KUBE-FIREWALL", "KUBE-KUBELET-CANARY", "KUBE-IPTABLES-HINT"):
                if f"-N {chain}" in rules:
                    _sh(tool, "-t", table, "-F", chain, check=False)
                    _sh(tool, "-t", table, "-X", chain, check=False)


def teardown(layout: Layout, bins: Path) -> list[str]:
    """After containerd, the kubelet and kube-proxy stopped: end what they left behind and
    give the host back its settings."""
    done: list[str] = []
    shims = _sh("pgrep", "-f", f"containerd-shim.*-address {SOCKET}", check=False).stdout
    for pid in shims.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
            done.append(f"containerd shim {pid}")
    for point in _mounts_under([CONTAINERD_RUN, KUBELET_ROOT, layout.root / "containerd"]):
        _sh("umount", "-l", point, check=False)
    for netns in Path("/run/netns").glob("cni-*"):
        _sh("umount", "-l", str(netns), check=False)
        netns.unlink(missing_ok=True)
    if (bins / "kube-proxy").exists():  # its iptables chains
        _sh(str(bins / "kube-proxy"), "--cleanup", check=False)
    _remove_kubelet_chains()
    if _sh("iptables", "-D", "FORWARD", "-j", ISOLATE_CHAIN, check=False).returncode == 0:
        _sh("iptables", "-F", ISOLATE_CHAIN, check=False)
        _sh("iptables", "-X", ISOLATE_CHAIN, check=False)
    if _sh("ip", "link", "del", BRIDGE, check=False).returncode == 0:
        done.append(f"bridge {BRIDGE}")
    saved = layout.root / "realnode-sysctls.json"
    if saved.exists():
        for name, value in json.loads(saved.read_text()).items():
            with contextlib.suppress(OSError):
                _sysctl_path(name).write_text(value + "\n")
        saved.unlink()
        done.append("host sysctls restored")
    with contextlib.suppress(OSError):
        if Path(OWNER.read_text().strip()) == layout.root:
            OWNER.unlink()
    shutil.rmtree(CNI_STATE, ignore_errors=True)
    shutil.rmtree(KUBELET_ROOT, ignore_errors=True)
    shutil.rmtree(CONTAINERD_RUN, ignore_errors=True)
    shutil.rmtree(layout.root / "containerd", ignore_errors=True)
    return done
