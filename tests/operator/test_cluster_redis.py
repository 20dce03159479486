"""The operator against a real kube-apiserver and its TaskQueues' Redis: a password from a
Kubernetes Secret, TLS (rediss://), and an outage that holds the replicas until Redis is back.
The operator runs as its own process."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.operator.opsupport import (
    Api,
    OperatorProcess,
    free_port,
    queue_of,
    taskqueue,
)
from tests.support.redisserver import RedisServer

pytestmark = pytest.mark.cluster


def test_password_from_secret_reaches_operator_and_workers(
    operator: OperatorProcess, api: Api, k8s_namespace: str, tmp_path: Path
) -> None:
    """spec.redis.secretRef: the operator reads the Secret, the workers get it as env."""
    from kubernetes import client

    import kubeq

    ns = k8s_namespace
    server = RedisServer(tmp_path / "redis", password="s3cret-pw")
    server.start()
    try:
        url = server.url
        app = kubeq.App(url)
        app._redis = kubeq.store.connections.sync_client(url, password="s3cret-pw")
        assert app.redis.ping()
        app.enqueue_many([kubeq.Call("e2e.work", (5,), queue=queue_of("auth", ns))])
        body = taskqueue("auth", ns, url)
        body["spec"]["redis"]["secretRef"] = {"name": "redis-auth", "key": "pw"}
        api.create_tq(body)

        def cond() -> Any:
            c = api.condition(ns, "auth", "RedisReachable")
            return c if c and c["reason"] == "SecretNotFound" else None

        wait_for(cond, timeout=30, message="SecretNotFound before the Secret exists")
        api.core.create_namespaced_secret(
            ns,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name="redis-auth"),
                string_data={"pw": "s3cret-pw"},
            ),
        )
        wait_for(
            lambda: (c := api.condition(ns, "auth", "RedisReachable")) and c["status"] == "True",
            timeout=30,
            message="RedisReachable once the Secret exists",
        )
        # the worker pod authenticates with KUBEQ_REDIS_PASSWORD from the Secret
        wait_for(lambda: app.redis.llen("e2e:runs") == 1, timeout=60, message="the job ran")
        app.close()
    finally:
        server.stop()


def test_tls_rediss(
    operator: OperatorProcess, api: Api, k8s_namespace: str, tmp_path: Path
) -> None:
    """rediss:// for the operator's reads and the workers (CA given in the URL)."""
    import shutil
    import subprocess

    import kubeq

    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is needed to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    port = free_port()
    tls = ["--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    tls += ["--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]
    server = RedisServer(tmp_path / "redis", args=tls)  # ready on its plain port, then TLS too
    server.start()
    try:
        ns = k8s_namespace
        url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
        app = kubeq.App(url)
        assert app.redis.ping()  # over TLS
        app.enqueue_many([kubeq.Call("e2e.work", (9,), queue=queue_of("tls", ns))])
        api.create_tq(taskqueue("tls", ns, url))
        wait_for(
            lambda: (c := api.condition(ns, "tls", "RedisReachable")) and c["status"] == "True",
            timeout=30,
            message="RedisReachable over TLS",
        )
        wait_for(lambda: app.redis.llen("e2e:runs") == 1, timeout=60, message="the job ran")
        app.close()
    finally:
        server.stop()


def test_redis_outage_holds_replicas_then_recovers(
    operator: OperatorProcess, api: Api, k8s_namespace: str, redis_server: Any, redis_url: str
) -> None:
    """Redis goes away while workers are busy: replicas are held (never zeroed), the
    condition says why; when Redis is back the condition clears."""
    import kubeq

    ns = k8s_namespace
    app = kubeq.App(redis_url)
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": 30}, queue=queue_of("outage", ns))
            for i in range(3)
        ]
    )
    api.create_tq(
        taskqueue(
            "outage",
            ns,
            redis_url,
            worker={"concurrency": 1},
            scaling={
                "maxReplicas": 3,
                "jobsPerReplica": 1,
                "idleSecondsBeforeZero": 1,
                "scaleDown": {"stabilizationSeconds": 1, "periodSeconds": 0},
            },
        )
    )
    wait_for(
        lambda: (d := api.deployment(ns, "outage-worker")) is not None and d.spec.replicas == 3,
        timeout=30,
        message="3 replicas",
    )
    app.close()
    redis_server.stop()
    try:
        wait_for(
            lambda: (c := api.condition(ns, "outage", "RedisReachable")) and c["status"] == "False",
            timeout=30,
            message="RedisReachable=False",
        )
        deadline = time.monotonic() + 8  # > stabilization + idle: an unguarded policy would act
        while time.monotonic() < deadline:
            assert api.deployment(ns, "outage-worker").spec.replicas == 3
            time.sleep(0.5)
        assert api.condition(ns, "outage", "Scaling")["reason"] == "ScalingHeld"
    finally:
        redis_server.start()
    wait_for(
        lambda: (c := api.condition(ns, "outage", "RedisReachable")) and c["status"] == "True",
        timeout=30,
        message="RedisReachable=True again",
    )
    wait_for(
        lambda: "RedisReachable" in {e.reason for e in api.events(ns, "outage")},
        timeout=20,
        message="a RedisReachable (recovered) Event",
    )
