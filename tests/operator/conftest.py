"""Fixtures for the operator tests. Pure tests here need none; the cluster tests (marked
``cluster``) get the CRD installed, a running operator process and a kubernetes API helper.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opsupport import Api, OperatorProcess, install_crd


@pytest.fixture(scope="module")
def operator(
    local_cluster: Any, kubectl: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[OperatorProcess]:
    install_crd(kubectl)
    log: Path = tmp_path_factory.mktemp("operator") / "operator.log"
    op = OperatorProcess(local_cluster.kubeconfig, log)
    yield op
    # delete what the tests left while the operator still runs (it removes its finalizers)
    kubectl("delete", "taskqueues", "--all", "--all-namespaces", "--wait=true", "--timeout=90s")
    code = op.stop()
    print(f"\n--- operator log tail ({log}) ---\n" + "\n".join(op.log().splitlines()[-40:]))
    assert code == 0, "the operator did not exit cleanly on SIGTERM"


@pytest.fixture(scope="session")
def api(k8s_client: Any) -> Api:
    return Api(k8s_client)
