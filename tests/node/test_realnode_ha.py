"""The chart's two operator replicas on the real node, with the chart's own RBAC: both record
themselves in the ClusterKopfPeering (its status subresource), so they see each other and
one stands by; neither logs a refused peering write."""

from __future__ import annotations

from typing import Any

import pytest

from localcluster.pytest_plugin import wait_for
from tests.node.test_realnode_e2e import chart, images, incluster  # noqa: F401 - fixtures


@pytest.mark.usefixtures("chart")
def test_both_operator_replicas_record_themselves_in_the_peering(real_kubectl: Any) -> None:
    ns = incluster.RELEASE_NAMESPACE
    pods = real_kubectl("get", "pods", "-n", ns, "-o", "name").stdout.split()
    assert len(pods) == 2, pods  # the chart's default: active and standby

    def peers() -> str:
        out = real_kubectl("get", "clusterkopfpeering", "kubeq", "-o", "jsonpath={.status}")
        return out.stdout.strip()

    seen = wait_for(
        lambda: (s := peers()) and s.count('"priority"') >= 2 and s,
        timeout=60,
        message=lambda: (
            f"both replicas in the peering's status; status: {peers()!r}; logs: "
            + real_kubectl("logs", "-n", ns, pods[0], "--tail=5").stdout[-1500:]
        ),
    )
    assert seen
    for pod in pods:
        log = real_kubectl("logs", "-n", ns, pod).stdout
        assert "forbidden" not in log, log[-3000:]
