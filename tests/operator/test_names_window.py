"""Long TaskQueue names, the bounded stabilization window,
maxReplicas 0, and the grace-period floor; item 9: no password in spec.redis.url."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kubeq import defaults
from kubeq_operator import deployment, names
from kubeq_operator.policy import History, Observation, ScalingSpec, decide, window_push
from kubeq_operator.spec import SpecError, parse

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_SUBDOMAIN_PART = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

# what a TaskQueue's metadata.name may be: a DNS subdomain of up to 253 characters
tq_names = (
    st.lists(st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?\Z"), min_size=1, max_size=8)
    .map(".".join)
    .filter(lambda n: len(n) <= 253)
)


def is_dns_subdomain(name: str) -> bool:
    return len(name) <= 253 and all(DNS_SUBDOMAIN_PART.match(p) for p in name.split("."))


def spec_doc(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "redis": {"url": "redis://redis:6379/0"},
        "worker": {"image": "shop:1", "tasks": "shop.tasks"},
    }
    doc.update(over)
    return doc


# -- names -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tq", "a" * 63, "thumbs.v2"])
def test_names_that_fit_are_unchanged(name: str) -> None:
    assert names.taskqueue_label(name) == name
    assert deployment.deployment_name(name) == f"{name}-worker"


@settings(max_examples=300)
@given(tq_names)
def test_every_valid_taskqueue_name_gives_valid_names(name: str) -> None:
    label = names.taskqueue_label(name)
    dep = deployment.deployment_name(name)
    assert len(label) <= 63 and LABEL_VALUE.match(label)
    assert is_dns_subdomain(dep) and len(dep) <= names.DEPLOYMENT_NAME_MAX
    # the ReplicaSet's name (Deployment name + '-' + up to 10 hash characters) fits too
    assert len(dep) + 11 <= 253
    m = deployment.build(name, "ns", parse(spec_doc()), 1)
    labels = m["spec"]["template"]["metadata"]["labels"]
    assert all(len(v) <= 63 for v in labels.values())
    assert m["spec"]["selector"]["matchLabels"]["kubeq.dev/taskqueue"] == label


def test_long_names_sharing_a_beginning_stay_distinct() -> None:
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert names.taskqueue_label(a) != names.taskqueue_label(b)
    assert deployment.deployment_name(a) != deployment.deployment_name(b)
    assert names.taskqueue_label(a) == names.taskqueue_label(a)  # stable


def test_a_cut_ending_in_a_dot_or_dash_is_still_a_dns_name() -> None:
    name = "a" * 53 + ".-" + "b" * 60
    assert is_dns_subdomain(deployment.deployment_name(name))


# -- the stabilization window ------------------------------------------------------------------


@settings(max_examples=500)
@given(
    st.lists(st.tuples(st.floats(0, 5), st.integers(0, 30)), min_size=1, max_size=80),
    st.sampled_from([0.0, 1.0, 3.0, 10.0, 60.0]),
    st.integers(0, 30),
)
def test_window_max_equals_the_naive_window(
    steps: list[tuple[float, int]], seconds: float, start: int
) -> None:
    t = 0.0
    naive: list[tuple[float, int]] = [(t, start)]
    window: tuple[tuple[float, int], ...] = ((t, start),)
    for dt, value in steps:
        t += dt
        naive = [r for r in naive if r[0] >= t - seconds] + [(t, value)]
        window = window_push(window, t, value, seconds)
        assert window[0][1] == max(v for _, v in naive)
        assert all(a[1] > b[1] for a, b in itertools.pairwise(window))
        assert len(window) <= 31  # bounded by distinct values, not by polls


def test_a_day_window_at_a_tenth_of_a_second_stays_small() -> None:
    spec = ScalingSpec(max_replicas=10, stabilization_seconds=86_400, poll_seconds=0.1)
    history = History()
    current = 10
    for i in range(20_000):
        d = decide(
            Observation(backlog=i % 7, in_flight=0, current_replicas=current),
            spec,
            history,
            i * 0.1,
        )
        history, current = d.history, d.replicas
    assert len(history.recommendations) <= spec.max_replicas + 1


# -- maxReplicas 0 -----------------------------------------------------------------------------


@pytest.mark.parametrize("current", [1, 3])
def test_max_replicas_zero_with_work_waiting_sets_zero_at_once(current: int) -> None:
    spec = ScalingSpec(max_replicas=0)
    d = decide(Observation(backlog=50, in_flight=4, current_replicas=current), spec, History(), 0)
    assert d.replicas == 0


# -- grace period --------------------------------------------------------------------------------


@pytest.mark.parametrize("grace", [1, 4, 5])
def test_grace_period_without_room_to_drain_and_hand_back_is_refused(grace: int) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec_doc(worker={"image": "i", "tasks": "t", "terminationGracePeriodSeconds": grace}))
    assert e.value.field == "spec.worker.terminationGracePeriodSeconds"
    assert f">= {defaults.MIN_TERMINATION_GRACE_SECONDS}" in str(e.value)


def test_the_shortest_grace_period_leaves_room_for_drain_and_hand_back() -> None:
    least = defaults.MIN_TERMINATION_GRACE_SECONDS
    w = parse(
        spec_doc(worker={"image": "i", "tasks": "t", "terminationGracePeriodSeconds": least})
    ).worker
    assert w.drain_timeout >= 1
    assert w.drain_timeout + defaults.HANDBACK_SECONDS < least


# -- no password in the URL --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://:s3cret@redis:6379/0",
        "redis://app:s3cret@redis:6379/0",
        "rediss://redis:6380/0?password=s3cret",
    ],
)
def test_a_password_in_the_url_is_refused_naming_secret_ref(url: str) -> None:
    with pytest.raises(SpecError) as e:
        parse(spec_doc(redis={"url": url}))
    assert e.value.field == "spec.redis.url"
    assert "spec.redis.secretRef" in str(e.value)
    assert "s3cret" not in str(e.value)


def test_a_url_without_a_password_is_accepted() -> None:
    s = parse(spec_doc(redis={"url": "redis://app@redis:6379/0", "secretRef": {"name": "a"}}))
    env = {e["name"]: e for e in deployment.worker_env(s)}
    assert env["KUBEQ_REDIS_URL"]["value"] == "redis://app@redis:6379/0"
    assert env["KUBEQ_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "a"
