"""``spec.pools[]`` parsing (each error names the field) and a pool's Deployment manifest:
its name, labels, selector, queues, resources (a GPU passes through) and scheduling (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kubeq_operator import deployment, pooldeployment
from kubeq_operator.spec import SpecError, parse


def spec(*pools: dict[str, Any], **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "redis": {"url": "redis://redis:6379/0"},
        "queues": ["default", "high"],
        "partitions": 1,
        "worker": {
            "image": "shop:1",
            "tasks": "shop.tasks",
            "concurrency": 8,
            "env": [{"name": "A", "value": "1"}],
            "podTemplate": {"spec": {"nodeSelector": {"zone": "a"}}},
        },
        "scaling": {"minReplicas": 1, "maxReplicas": 50, "scaleDown": {"stabilizationSeconds": 9}},
        "pools": list(pools),
    }
    doc.update(over)
    return doc


GPU = {
    "name": "gpu",
    "tasks": ["shop.tasks.infer"],
    "image": "shop-cuda:1",
    "concurrency": 1,
    "resources": {"limits": {"nvidia.com/gpu": 1}, "requests": {"cpu": "2", "memory": "8Gi"}},
    "nodeSelector": {"accelerator": "nvidia-l4"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    "priorityClassName": "batch-high",
    "env": [{"name": "A", "value": "2"}, {"name": "CUDA", "value": "1"}],
    "scaling": {"maxReplicas": 4, "scaleDown": {"periodSeconds": 30}},
}


def test_a_spec_without_pools_parses_as_before() -> None:
    s = parse(spec())
    assert s.pools == ()
    assert parse({**spec(), "pools": None}).worker_hash() == s.worker_hash()
    no_key = spec()
    del no_key["pools"]
    assert parse(no_key) == s


def test_a_pool_takes_its_fields_over_the_taskqueues() -> None:
    s = parse(spec(GPU, {"name": "slow", "queues": ["video"]}))
    gpu, slow = s.pools
    assert (gpu.name, gpu.tasks, gpu.queues) == ("gpu", ("shop.tasks.infer",), ())
    assert gpu.worker.image == "shop-cuda:1" and gpu.worker.concurrency == 1
    assert gpu.worker.tasks == "shop.tasks"  # not set: the TaskQueue's
    assert [dict(e) for e in gpu.worker.env] == [
        {"name": "A", "value": "2"},
        {"name": "CUDA", "value": "1"},
    ]
    # scaling: the pool's fields over the TaskQueue's, jobsPerReplica from the pool's concurrency
    assert (gpu.scaling.min_replicas, gpu.scaling.max_replicas) == (1, 4)
    assert gpu.scaling.stabilization_seconds == 9 and gpu.scaling.period_seconds == 30
    assert gpu.scaling.jobs_per_replica == 1
    assert slow.worker == s.worker  # nothing of its own
    assert slow.logical_queues(s.queues) == ("default@slow", "high@slow", "video")
    # the TaskQueue's own Deployment is not rolled by adding pools
    assert s.worker_hash() == parse(spec()).worker_hash()


def test_a_pools_deployment() -> None:
    s = parse(spec(GPU, partitions=2))
    gpu = s.pools[0]
    m = pooldeployment.build("shop", "prod", s, gpu, 0)
    assert m["metadata"]["name"] == "shop-gpu-pool"
    labels = m["metadata"]["labels"]
    assert labels["kubeq.dev/taskqueue"] == "shop" and labels["kubeq.dev/pool"] == "gpu"
    selector = m["spec"]["selector"]["matchLabels"]
    assert selector == {
        "kubeq.dev/taskqueue": "shop",
        "app.kubernetes.io/component": "pool-worker",
        "kubeq.dev/pool": "gpu",
    }
    # the TaskQueue's own Deployment never selects a pool's pods
    own = deployment.build("shop", "prod", s, 0)["spec"]["selector"]["matchLabels"]
    pod_labels = m["spec"]["template"]["metadata"]["labels"]
    assert not all(pod_labels.get(k) == v for k, v in own.items())
    assert all(pod_labels[k] == v for k, v in selector.items())
    pod = m["spec"]["template"]["spec"]
    c = pod["containers"][0]
    queues = [c["command"][i + 1] for i, a in enumerate(c["command"]) if a == "--queue"]
    assert queues == ["default@gpu#0", "default@gpu#1", "high@gpu#0", "high@gpu#1"]
    assert c["command"][c["command"].index("--concurrency") + 1] == "1"
    assert c["image"] == "shop-cuda:1"
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1  # passes through
    assert c["resources"]["requests"] == {"cpu": "2", "memory": "8Gi"}
    assert pod["nodeSelector"] == {"zone": "a", "accelerator": "nvidia-l4"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["priorityClassName"] == "batch-high"
    hash_ = m["metadata"]["annotations"]["kubeq.dev/worker-hash"]
    assert hash_ == m["spec"]["template"]["metadata"]["annotations"]["kubeq.dev/worker-hash"]
    assert hash_ != s.worker_hash()


@pytest.mark.parametrize(
    ("pools", "field", "needle"),
    [
        ([{"name": "a"}, {"name": "a"}], "spec.pools[1].name", "declared twice"),
        (
            [{"name": "a", "tasks": ["t"]}, {"name": "b", "tasks": ["u", "t"]}],
            "spec.pools[1].tasks[1]",
            "is in pool 'a' too",
        ),
        ([{"name": "a", "gpus": 1}], "spec.pools[0].gpus", "unknown field"),
        ([{"name": "GPU"}], "spec.pools[0].name", "DNS label"),
        ([{"tasks": ["t"]}], "spec.pools[0].name", "DNS label"),
        ([{"name": "a", "queues": ["high"]}], "spec.pools[0].queues[0]", "in spec.queues"),
        (
            [{"name": "a", "queues": ["v"]}, {"name": "b", "queues": ["v"]}],
            "spec.pools[1].queues[0]",
            "served by pool 'a'",
        ),
        ([{"name": "a", "queues": ["v@x"]}], "spec.pools[0].queues[0]", "plain queue name"),
        (
            [{"name": "a", "mode": "CronJob"}],
            "spec.pools[0].mode",
            "must be one of Deployment, Job",
        ),
        (
            [{"name": "a", "scaling": {"minReplicas": 60}}],
            "spec.pools[0].scaling.minReplicas",
            "must be <= maxReplicas",
        ),
        ([{"name": "a", "scaling": {"pollSeconds": 2}}], "spec.pools[0].scaling.pollSeconds", ""),
        ([{"name": "a", "resources": {"gpus": {}}}], "spec.pools[0].resources.gpus", "unknown"),
        (
            [
                {
                    "name": "a",
                    "podTemplate": {"spec": {"containers": [{"name": "worker", "image": "x"}]}},
                }
            ],
            "spec.pools[0].podTemplate.spec.containers[0].image",
            "instead",
        ),
        ([{"name": "a", "tolerations": {"key": "x"}}], "spec.pools[0].tolerations", "list"),
        (["gpu"], "spec.pools[0]", "must be an object"),
    ],
)
def test_a_bad_pool_names_its_field(pools: list[Any], field: str, needle: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec(*pools))
    assert e.value.field == field, str(e.value)
    assert needle in str(e.value)
