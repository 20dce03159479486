"""The Scaling page on the local control plane: a TaskQueue goes 0 -> N -> 0 and the page,
live, shows its current replicas rise and fall, with the operator's Events and conditions.

The whole loop runs: kube-apiserver, the node agent running worker pods as processes, the
operator process, real Redis, and `kubeq dashboard --kubeconfig ...` in headless Chromium.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

import kubeq
from tests.operator.opsupport import Api, OperatorProcess, api, operator, queue_of, taskqueue

__all__ = ["api", "operator"]

pytestmark = [pytest.mark.e2e, pytest.mark.cluster]


def test_scaling_page_shows_a_taskqueue_go_from_zero_to_n_and_back(
    operator: OperatorProcess,
    api: Api,
    k8s_namespace: str,
    redis_url: str,
    local_cluster: Any,
    start_dashboard: Callable[..., str],
    browser: Any,
    shot: Callable[[str], Path],
) -> None:
    ns = k8s_namespace
    api.create_tq(
        taskqueue(
            "dash",
            ns,
            redis_url,
            scaling={"minReplicas": 0, "maxReplicas": 3, "jobsPerReplica": 4, "pollSeconds": 1},
        )
    )
    base = start_dashboard(
        "--read-only",
        "--namespace",
        ns,
        env={"KUBECONFIG": str(local_cluster.kubeconfig)},
    )
    browser.get(base + "/scaling")
    key = f"{ns}/dash"
    current = f'b[data-tq="{key}"][data-k="current"]'

    def read() -> int | None:
        found = browser.find_elements(By.CSS_SELECTOR, current)
        raw = found[0].text.strip() if found else ""
        return int(raw) if raw.isdigit() else None

    deadline = time.monotonic() + 60
    while read() is None and time.monotonic() < deadline:
        time.sleep(0.2)
        if not browser.find_elements(By.CSS_SELECTOR, current):
            browser.get(base + "/scaling")  # the TaskQueue was not listed yet
    assert read() == 0, browser.page_source[:2000]
    browser.execute_script("window.__sameDocument = true")

    app = kubeq.App(redis_url)
    app.enqueue_many(
        [
            kubeq.Call("e2e.work", (i,), {"seconds": 0.2}, queue=queue_of("dash", ns))
            for i in range(120)
        ]
    )
    seen: list[int] = [0]
    peak_shot = False
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        value = read()
        if value is not None and value != seen[-1]:
            seen.append(value)
        if max(seen) > 0 and not peak_shot:
            time.sleep(2)
            shot("scaling")
            peak_shot = True
        if max(seen) > 0 and seen[-1] == 0:
            break
        time.sleep(0.2)
    assert max(seen) > 0 and seen[-1] == 0, f"current replicas seen on the page: {seen}"
    assert browser.execute_script("return window.__sameDocument") is True  # no reload
    events = browser.find_element(By.CSS_SELECTOR, f'table[data-tq="{key}"][data-k="events"]')
    assert "->" in events.text, events.text  # the operator's "0 -> N replicas: ..." Events
    conditions = browser.find_element(
        By.CSS_SELECTOR, f'table[data-tq="{key}"][data-k="conditions"]'
    )
    assert "Ready" in conditions.text
    assert browser.find_elements(By.CSS_SELECTOR, f'svg[data-tqchart="{key}"] polyline')
