"""The worker pod the operator builds: secure defaults, probes, resources, and the TaskQueue's
podTemplate layered over them (pure; the judges in tests/judges check the same pods with
Pod Security Admission, kube-score and checkov)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeq import defaults
from kubeq_operator import deployment, podtemplate
from kubeq_operator.spec import SpecError, parse


def spec(**worker: Any) -> dict[str, Any]:
    return {
        "redis": {"url": "redis://redis:6379/0"},
        "worker": {"image": "shop:1", "tasks": "shop.tasks", **worker},
    }


def pod(**worker: Any) -> dict[str, Any]:
    template: dict[str, Any] = deployment.build("tq", "shop", parse(spec(**worker)), 1)["spec"][
        "template"
    ]
    return template


def test_defaults_are_restricted_read_only_probed_and_sized() -> None:
    p = pod()["spec"]
    assert p["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": defaults.WORKER_UID,
        "runAsGroup": defaults.WORKER_UID,
        "fsGroup": defaults.WORKER_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert p["automountServiceAccountToken"] is False
    c = p["containers"][0]
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    assert p["volumes"][0]["name"] == "tmp" and "emptyDir" in p["volumes"][0]
    assert c["resources"] == {
        "requests": {
            "cpu": defaults.WORKER_CPU_REQUEST,
            "memory": defaults.WORKER_MEMORY_REQUEST,
        },
        "limits": {"memory": defaults.WORKER_MEMORY_LIMIT},
    }
    port = defaults.WORKER_METRICS_PORT
    assert c["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert c["command"][c["command"].index("--metrics-port") + 1] == str(port)
    for probe in ("livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}


def test_metrics_port_zero_turns_the_endpoint_and_probes_off() -> None:
    c = pod(metricsPort=0)["spec"]["containers"][0]
    assert "--metrics-port" not in c["command"]
    assert not {"ports", "livenessProbe", "readinessProbe"} & set(c)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        (
            {"requests": {"memory": "2Gi"}},
            {"requests": {"memory": "2Gi", "cpu": "100m"}, "limits": {"memory": "2Gi"}},
        ),
        (
            {"limits": {"memory": "2Gi", "cpu": "1"}},
            {"requests": {}, "limits": {"memory": "2Gi", "cpu": "1"}},
        ),
        (
            {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
            {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": "3Gi"}},
        ),
    ],
)
def test_resources_fill_only_what_is_missing(
    resources: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert pod(resources=resources)["spec"]["containers"][0]["resources"] == expected


def test_pod_template_fields_reach_the_pod() -> None:
    template = {
        "metadata": {"labels": {"team": "shop"}, "annotations": {"a": "b"}},
        "spec": {
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "batch", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {}},
            "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "zone"}],
            "priorityClassName": "batch",
            "imagePullSecrets": [{"name": "regcred"}],
            "securityContext": {"runAsUser": 2000, "runAsGroup": 2000},
            "volumes": [{"name": "model", "persistentVolumeClaim": {"claimName": "m"}}],
            "containers": [
                {
                    "name": "worker",
                    "volumeMounts": [{"name": "model", "mountPath": "/model"}],
                    "securityContext": {"readOnlyRootFilesystem": False},
                },
                {"name": "proxy", "image": "proxy:1"},
            ],
        },
    }
    t = pod(podTemplate=template)
    assert t["metadata"]["labels"]["team"] == "shop"
    assert t["metadata"]["labels"]["kubeq.dev/taskqueue"] == "tq"
    assert t["metadata"]["annotations"]["a"] == "b"
    assert "kubeq.dev/worker-hash" in t["metadata"]["annotations"]
    p = t["spec"]
    for key in ("nodeSelector", "tolerations", "affinity", "topologySpreadConstraints"):
        assert p[key] == template["spec"][key]
    assert p["priorityClassName"] == "batch"
    assert p["imagePullSecrets"] == [{"name": "regcred"}]
    # overrides win key by key; the rest of kubeq's defaults stay
    assert p["securityContext"]["runAsUser"] == 2000
    assert p["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert [v["name"] for v in p["volumes"]] == ["tmp", "model"]
    worker, proxy = p["containers"]
    assert worker["name"] == "worker" and proxy == {"name": "proxy", "image": "proxy:1"}
    assert [m["mountPath"] for m in worker["volumeMounts"]] == ["/tmp", "/model"]
    assert worker["securityContext"]["readOnlyRootFilesystem"] is False
    assert worker["securityContext"]["allowPrivilegeEscalation"] is False
    assert worker["image"] == "shop:1"


def test_a_pod_template_change_rolls_the_workers() -> None:
    a = parse(spec()).worker_hash()
    b = parse(spec(podTemplate={"spec": {"nodeSelector": {"pool": "gpu"}}})).worker_hash()
    assert a != b


@pytest.mark.parametrize(
    ("worker", "field"),
    [
        ({"image": ""}, "spec.worker.image"),
        ({"env": [{"name": "A", "value": 1}]}, "spec.worker.env[0].value"),
        ({"env": [{"name": "A", "value": "1", "valueFrom": {}}]}, "spec.worker.env[0]"),
        ({"resources": {"request": {"cpu": 1}}}, "spec.worker.resources.request"),
        ({"resources": {"limits": {"memory": [1]}}}, "spec.worker.resources.limits.memory"),
        ({"metricsPort": 70000}, "spec.worker.metricsPort"),
        (
            {"podTemplate": {"spec": {"containers": [{"name": "worker", "image": "x"}]}}},
            "spec.worker.podTemplate.spec.containers[0].image",
        ),
        (
            {"podTemplate": {"spec": {"terminationGracePeriodSeconds": 5}}},
            "spec.worker.podTemplate.spec.terminationGracePeriodSeconds",
        ),
        (
            {"podTemplate": {"metadata": {"labels": {"kubeq.dev/taskqueue": "x"}}}},
            "spec.worker.podTemplate.metadata.labels.kubeq.dev/taskqueue",
        ),
        ({"podTemplate": {"metadata": {"name": "x"}}}, "spec.worker.podTemplate.metadata.name"),
        ({"podTemplate": {"kind": "Pod"}}, "spec.worker.podTemplate.kind"),
    ],
)
def test_bad_worker_fields_are_named(worker: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec(**worker))
    assert e.value.field == field
    assert "instead" in str(e.value) or len(str(e.value)) > len(field) + 10


def test_missing_image_says_there_is_no_default() -> None:
    doc = spec()
    del doc["worker"]["image"]
    with pytest.raises(SpecError, match="no default") as e:
        parse(doc)
    assert e.value.field == "spec.worker.image"


def test_merge_lists_by_their_kubernetes_key_and_replaces_others() -> None:
    base = {"env": [{"name": "A", "value": "1"}], "args": ["a"], "x": {"y": 1, "z": 2}}
    over = {"env": [{"name": "A", "value": "2"}, {"name": "B"}], "args": ["b"], "x": {"y": 3}}
    assert podtemplate.merge(base, over) == {
        "env": [{"name": "A", "value": "2"}, {"name": "B"}],
        "args": ["b"],
        "x": {"y": 3, "z": 2},
    }
    assert base["env"] == [{"name": "A", "value": "1"}]  # inputs untouched
