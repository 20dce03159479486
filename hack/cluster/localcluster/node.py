"""The Node object the agent stands for: registering it with the API server, its status
(capacity, addresses, the Ready condition) and its Lease in ``kube-node-lease``."""

from __future__ import annotations

import logging
import platform

from .kubeapi import JSON, MERGE_PATCH, ApiError, Client
from .paths import K8S_VERSION
from .podenv import POD_IP
from .podruns import now_micro, now_rfc3339

log = logging.getLogger("localcluster.nodeagent")

LEASE_DURATION = 40
CAPACITY = {"cpu": "64", "memory": "256Gi", "pods": "250", "ephemeral-storage": "500Gi"}


class NodeRecord:
    """Registers one Node, reports its status and renews its Lease."""

    def __init__(self, client: Client, node_name: str) -> None:
        self.client = client
        self.node_name = node_name
        self.node_uid = ""
        self.started = now_rfc3339()

    def status(self) -> JSON:
        ts = now_rfc3339()

        def cond(kind: str, status: str, reason: str, message: str) -> JSON:
            return {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": message,
                "lastHeartbeatTime": ts,
                "lastTransitionTime": self.started,
            }

        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        return {
            "capacity": CAPACITY,
            "allocatable": CAPACITY,
            "addresses": [
                {"type": "InternalIP", "address": POD_IP},
                {"type": "Hostname", "address": self.node_name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "localcluster",
                "systemUUID": "localcluster",
                "bootID": "localcluster",
                "kernelVersion": platform.release(),
                "osImage": f"localcluster node agent on {platform.system()}",
                "containerRuntimeVersion": "localcluster://processes",
                "kubeletVersion": K8S_VERSION,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
            "conditions": [
                cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
                cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
                cond("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
                cond("Ready", "True", "KubeletReady", "localcluster node agent is ready"),
            ],
        }

    def register(self) -> None:
        self.started = now_rfc3339()
        arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.node_name,
                "labels": {
                    "kubernetes.io/hostname": self.node_name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": arch,
                    "beta.kubernetes.io/os": "linux",
                    "beta.kubernetes.io/arch": arch,
                },
            },
            "spec": {},
        }
        try:
            node = self.client.create("/api/v1/nodes", body)
        except ApiError as e:
            if e.status != 409:
                raise
            node = self.client.get(f"/api/v1/nodes/{self.node_name}")
        self.node_uid = node["metadata"]["uid"]
        self.client.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self.status()})
        log.info("registered node %s", self.node_name)

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{self.node_name}"
        spec = {
            "holderIdentity": self.node_name,
            "leaseDurationSeconds": LEASE_DURATION,
            "renewTime": now_micro(),
        }
        try:
            self.client.patch(path, {"spec": spec}, content_type=MERGE_PATCH)
        except ApiError as e:
            if e.status != 404:
                raise
            owner = {
                "apiVersion": "v1",
                "kind": "Node",
                "name": self.node_name,
                "uid": self.node_uid,
            }
            self.client.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {
                        "name": self.node_name,
                        "namespace": "kube-node-lease",
                        "ownerReferences": [owner],
                    },
                    "spec": spec,
                },
            )

    def patch_status(self) -> None:
        self.client.patch(f"/api/v1/nodes/{self.node_name}/status", {"status": self.status()})
