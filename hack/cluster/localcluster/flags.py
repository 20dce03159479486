"""The command lines of the control-plane components (etcd, kube-apiserver,
kube-controller-manager, kube-scheduler) of the local cluster, kept apart from the code that
starts and stops them (cluster.py) so each flag and the reason for it can be read in one place.
"""

from __future__ import annotations

from pathlib import Path


def etcd(bins: Path, data_dir: Path, etcd_url: str, peer_url: str) -> list[str]:
    return [
        str(bins / "etcd"),
        "--name=default",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={etcd_url}",
        f"--advertise-client-urls={etcd_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=default={peer_url}",
        "--listen-metrics-urls=",
        "--unsafe-no-fsync",  # a throwaway test cluster: speed over durability
        "--log-level=warn",
    ]  # fmt: skip


def apiserver(
    bins: Path, etcd_url: str, address_args: list[str], port: int, p: Path, service_cidr: str
) -> list[str]:
    return [
        str(bins / "kube-apiserver"),
        f"--etcd-servers={etcd_url}",
        *address_args,
        f"--secure-port={port}",
        f"--cert-dir={p}",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--service-cluster-ip-range={service_cidr}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--authorization-mode=Node,RBAC",
        # Request-header authentication, so aggregated API servers could be added (and the
        # controller manager and scheduler find a complete extension-apiserver-authentication).
        f"--requestheader-client-ca-file={p / 'ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={p / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={p / 'front-proxy-client.key'}",
        # An aggregated API server is reached at its endpoint's address, not its Service's
        # ClusterIP: the node agent's cluster has no kube-proxy to route a ClusterIP
        # (bench/keda_real.py registers KEDA's metrics server this way).
        "--enable-aggregator-routing=true",
        # The default plugins (NamespaceLifecycle, ServiceAccount, ...) stay on: the
        # controller manager runs the service-account controllers they depend on.
        "--enable-admission-plugins=NodeRestriction",
        "--allow-privileged=true",
        "--profiling=false",
        "--event-ttl=1h",
        "--v=1",
    ]  # fmt: skip


def controller_manager(bins: Path, cm_kc: str, port: int, p: Path, service_cidr: str) -> list[str]:
    return [
        str(bins / "kube-controller-manager"),
        f"--kubeconfig={cm_kc}",
        f"--authentication-kubeconfig={cm_kc}",
        f"--authorization-kubeconfig={cm_kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        # Every default controller; the cloud ones no longer live in this binary.
        "--controllers=*",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        f"--cluster-signing-cert-file={p / 'ca.crt'}",
        f"--cluster-signing-key-file={p / 'ca.key'}",
        f"--service-cluster-ip-range={service_cidr}",
        "--cluster-name=kubeq-local",
        "--v=1",
    ]  # fmt: skip


def scheduler(bins: Path, sched_kc: str, port: int) -> list[str]:
    return [
        str(bins / "kube-scheduler"),
        f"--kubeconfig={sched_kc}",
        f"--authentication-kubeconfig={sched_kc}",
        f"--authorization-kubeconfig={sched_kc}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--v=1",
    ]  # fmt: skip
