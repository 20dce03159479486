"""What a container of a pod bound to the node agent starts with: its environment (plain
values, ``fieldRef``, ``secretKeyRef``/``configMapKeyRef`` and ``envFrom`` read through the
API server, ``$(VAR)`` expansion) and a stand-in for the projected service-account token (a
TokenRequest written under the pod's directory, with a kubeconfig that uses it)."""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from .kubeapi import JSON, ApiError, Client
from .paths import Layout

POD_IP = "127.0.0.1"


class ConfigError(Exception):
    """The container cannot be started as specified (kubelet: CreateContainerConfigError)."""


_VAR_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: unknown references stay, ``$$`` escapes ``$``."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(sub, text)


class PodEnv:
    """Resolves a container's environment through the API server, as the kubelet does."""

    def __init__(
        self, client: Client, node_name: str, layout: Layout, venv_bin: Path, apiserver_port: int
    ) -> None:
        self.client = client
        self.node_name = node_name
        self.layout = layout
        self.venv_bin = venv_bin
        self.apiserver_port = apiserver_port

    def resolve_ref(self, kind: str, namespace: str, ref: JSON) -> str | None:
        resource = "secrets" if kind == "secret" else "configmaps"
        try:
            obj = self.client.get(f"/api/v1/namespaces/{namespace}/{resource}/{ref['name']}")
        except ApiError as e:
            if e.status == 404 and ref.get("optional"):
                return None
            raise ConfigError(f"{kind} {ref['name']!r}: {e.reason or e.status}") from e
        if kind == "secret":
            data = obj.get("data") or {}
            if ref["key"] in data:
                return base64.b64decode(data[ref["key"]]).decode()
        else:
            if ref["key"] in (obj.get("data") or {}):
                return str(obj["data"][ref["key"]])
            if ref["key"] in (obj.get("binaryData") or {}):
                return base64.b64decode(obj["binaryData"][ref["key"]]).decode()
        if ref.get("optional"):
            return None
        raise ConfigError(f"{kind} {ref['name']!r} has no key {ref['key']!r}")

    def field_ref(self, pod: JSON, path: str) -> str:
        meta = pod["metadata"]
        simple = {
            "metadata.name": meta["name"],
            "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"],
            "spec.nodeName": self.node_name,
            "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
            "status.podIP": POD_IP,
            "status.podIPs": POD_IP,
            "status.hostIP": POD_IP,
            "status.hostIPs": POD_IP,
        }
        if path in simple:
            return str(simple[path])
        m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        raise ConfigError(f"unsupported fieldRef {path!r}")

    def service_account(self, pod: JSON) -> dict[str, str]:
        """What stands in for the projected service-account volume: a bound token from the
        TokenRequest API, written with the CA and namespace under the pod's directory, and a
        kubeconfig using it, passed as KUBECONFIG (processes cannot see the real
        /var/run/secrets path). The token lives one hour and is not refreshed."""
        meta, spec = pod["metadata"], pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return {}
        namespace, account = meta["namespace"], spec.get("serviceAccountName") or "default"
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {
                "expirationSeconds": 3600,
                "boundObjectRef": {
                    "apiVersion": "v1",
                    "kind": "Pod",
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        try:
            token = self.client.create(
                f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token", body
            )["status"]["token"]
        except ApiError as e:
            raise ConfigError(f"service account {account!r}: {e.reason or e.status}") from e
        sa_dir = self.layout.pods / f"{namespace}_{meta['name']}" / "serviceaccount"
        sa_dir.mkdir(parents=True, exist_ok=True)
        (sa_dir / "token").write_text(token)
        (sa_dir / "namespace").write_text(namespace)
        ca = self.layout.pki / "ca.crt"
        (sa_dir / "ca.crt").write_bytes(ca.read_bytes())
        kubeconfig = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "in-cluster",
                    "cluster": {
                        "server": f"https://127.0.0.1:{self.apiserver_port}",
                        "certificate-authority": str(sa_dir / "ca.crt"),
                    },
                }
            ],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [
                {
                    "name": "in-cluster",
                    "context": {"cluster": "in-cluster", "user": account, "namespace": namespace},
                }
            ],
            "current-context": "in-cluster",
        }
        path = sa_dir / "kubeconfig"
        path.write_text(json.dumps(kubeconfig, indent=2) + "\n")
        path.chmod(0o600)
        return {"KUBECONFIG": str(path)}

    def env(self, pod: JSON, spec: JSON) -> dict[str, str]:
        namespace = pod["metadata"]["namespace"]
        env = {
            "PATH": f"{self.venv_bin}{os.pathsep}{os.environ.get('PATH', os.defpath)}",
            "HOME": os.environ.get("HOME", "/root"),
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            "HOSTNAME": pod["metadata"]["name"],
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(self.apiserver_port),
            "PYTHONUNBUFFERED": "1",
            **self.service_account(pod),
        }
        for source in spec.get("envFrom") or []:
            kind = "secret" if "secretRef" in source else "configMap"
            ref = source.get("secretRef") or source.get("configMapRef") or {}
            resource = "secrets" if kind == "secret" else "configmaps"
            try:
                obj = self.client.get(f"/api/v1/namespaces/{namespace}/{resource}/{ref['name']}")
            except ApiError as e:
                if e.status == 404 and ref.get("optional"):
                    continue
                raise ConfigError(f"{kind} {ref.get('name')!r}: {e.reason or e.status}") from e
            for k, v in (obj.get("data") or {}).items():
                decoded = base64.b64decode(v).decode() if kind == "secret" else str(v)
                env[source.get("prefix", "") + k] = decoded
        for item in spec.get("env") or []:
            if "value" in item or "valueFrom" not in item:
                env[item["name"]] = expand(str(item.get("value", "")), env)
                continue
            vf = item["valueFrom"]
            value: str | None
            if "secretKeyRef" in vf:
                value = self.resolve_ref("secret", namespace, vf["secretKeyRef"])
            elif "configMapKeyRef" in vf:
                value = self.resolve_ref("configMap", namespace, vf["configMapKeyRef"])
            elif "fieldRef" in vf:
                value = self.field_ref(pod, vf["fieldRef"]["fieldPath"])
            else:
                raise ConfigError(f"env {item['name']}: unsupported valueFrom {sorted(vf)}")
            if value is not None:
                env[item["name"]] = value
        return env
