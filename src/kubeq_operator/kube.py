"""The few Kubernetes API calls the operator makes, as async functions.

kopf watches the TaskQueues; everything the operator writes (the Deployment, its scale,
pod annotations, the TaskQueue status, Secrets it reads) goes through the official
``kubernetes`` client, whose calls block, so each runs in a worker thread. Credentials:
in-cluster service account, else the kubeconfig (``KUBECONFIG``).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from kubeq_operator.crd import GROUP, PLURAL, VERSION

T = TypeVar("T")

# The generated client picks json-patch for every PATCH unless told: say it each time.
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"

_lock = threading.Lock()
_api: Any = None


def api_client() -> Any:
    """The shared ApiClient (created on first use)."""
    global _api
    with _lock:
        if _api is None:
            try:  # (newer kubernetes clients only type these two calls: unused-ignore)
                config.load_incluster_config()  # type: ignore[no-untyped-call, unused-ignore]
                _api = client.ApiClient()
            except config.ConfigException:
                _api = config.new_client_from_config(persist_config=False)  # type: ignore[no-untyped-call, unused-ignore]
            _api.configuration.connection_pool_maxsize = 32
        return _api


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def is_not_found(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 404


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, ApiException) and exc.status == 409


def is_namespace_terminating(exc: BaseException) -> bool:
    """The API server refused to create an object because its namespace is being deleted."""
    return (
        isinstance(exc, ApiException)
        and exc.status == 403
        and "NamespaceTerminating" in str(exc.body or "")
    )


def describe_error(exc: BaseException) -> str:
    """One line for a log: an API error's status and reason, else the exception itself."""
    if isinstance(exc, ApiException):
        return f"API error {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {exc}"


async def server_version(timeout: float) -> str:
    """The API server's version: a cheap call that proves it can be reached (the liveness
    probe's check)."""
    code = await _call(client.VersionApi(api_client()).get_code, _request_timeout=timeout)
    return str(code.git_version)


async def get_deployment(namespace: str, name: str) -> dict[str, Any] | None:
    apps = client.AppsV1Api(api_client())
    try:
        obj = await _call(apps.read_namespaced_deployment, name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    result: dict[str, Any] = api_client().sanitize_for_serialization(obj)
    return result


async def create_deployment(namespace: str, manifest: dict[str, Any]) -> None:
    apps = client.AppsV1Api(api_client())
    await _call(apps.create_namespaced_deployment, namespace, manifest)


async def json_patch_deployment(namespace: str, name: str, ops: list[dict[str, Any]]) -> None:
    apps = client.AppsV1Api(api_client())
    await _call(apps.patch_namespaced_deployment, name, namespace, ops, _content_type=JSON_PATCH)


async def scale_deployment(namespace: str, name: str, replicas: int) -> None:
    apps = client.AppsV1Api(api_client())
    await _call(
        apps.patch_namespaced_deployment_scale,
        name,
        namespace,
        {"spec": {"replicas": replicas}},
        _content_type=MERGE_PATCH,
    )


async def delete_deployment(namespace: str, name: str) -> None:
    """Delete a Deployment (its pods get SIGTERM and drain); already gone is fine."""
    apps = client.AppsV1Api(api_client())
    try:
        await _call(
            apps.delete_namespaced_deployment, name, namespace, propagation_policy="Background"
        )
    except ApiException as e:
        if e.status != 404:
            raise


async def list_pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    core = client.CoreV1Api(api_client())
    pods = await _call(core.list_namespaced_pod, namespace, label_selector=selector)
    items: list[dict[str, Any]] = api_client().sanitize_for_serialization(pods).get("items", [])
    return items


async def annotate_pod(namespace: str, name: str, annotations: dict[str, str]) -> None:
    core = client.CoreV1Api(api_client())
    await _call(
        core.patch_namespaced_pod,
        name,
        namespace,
        {"metadata": {"annotations": annotations}},
        _content_type=MERGE_PATCH,
    )


async def read_secret_key(namespace: str, name: str, key: str) -> str | None:
    """The decoded value of one key of a Secret; None if the Secret or the key is missing."""
    core = client.CoreV1Api(api_client())
    try:
        secret = await _call(core.read_namespaced_secret, name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    data = secret.data or {}
    if key not in data:
        return None
    return base64.b64decode(data[key]).decode()


async def patch_status(namespace: str, name: str, status: dict[str, Any]) -> None:
    api = client.CustomObjectsApi(api_client())
    await _call(
        api.patch_namespaced_custom_object_status,
        GROUP,
        VERSION,
        namespace,
        PLURAL,
        name,
        {"status": status},
        _content_type=MERGE_PATCH,
    )
