"""The layouts shared with the Lua scripts: the enqueue plan, ack fields, the fetch reply.

Each Lua script's header documents its ARGV and reply; these tests hold the Python side to
the same numbers, read from the scripts themselves where the script states them.
"""

from __future__ import annotations

import re

import orjson
import pytest

from kubeq import Call, TaskOptions, defaults
from kubeq.client.enqueue import (
    ENQUEUE_BATCH,
    ENQUEUE_GROUP_FIELDS,
    ENQUEUE_HEADER,
    ENQUEUE_JOB_FIELDS,
    RESEND_WINDOW,
    laid_out,
    plan_enqueue,
)
from kubeq.outcomes import (
    ACK_FIELDS_FINISHED,
    ACK_FIELDS_OTHER,
    Ended,
    Outcome,
    Settlement,
)
from kubeq.store.keys import QueueKeys
from kubeq.store.scripts import LUA, source
from kubeq.store.wire import (
    FETCH_FIELDS_PER_JOB,
    fetch_args,
    parse_fetch_reply,
    parse_heartbeat_reply,
)


def _stride(script: str, pattern: str) -> int:
    match = re.search(pattern, source(script))
    assert match, f"{script}.lua no longer states its stride as {pattern!r}"
    return int(match.group(1))


def test_strides_match_the_scripts() -> None:
    assert _stride("ack", r"local FINISHED_FIELDS, OTHER_FIELDS = (\d+)") == ACK_FIELDS_FINISHED
    assert _stride("ack", r"local FINISHED_FIELDS, OTHER_FIELDS = \d+, (\d+)") == ACK_FIELDS_OTHER
    # the call's groups are walked twice: once before anything is read, then to write
    assert _stride("enqueue", r"o = o \+ (\d+)\n    for i = 1, count") == ENQUEUE_GROUP_FIELDS
    assert _stride("enqueue", r"o = o \+ (\d+)\n  -- a field at its") == ENQUEUE_GROUP_FIELDS
    assert _stride("enqueue", r"o = o \+ (\d+)\n    local jk") == ENQUEUE_JOB_FIELDS
    assert _stride("enqueue", r"local o = (\d+)\n") == ENQUEUE_HEADER + 1  # Lua counts from 1
    assert _stride("enqueue", r"local RESEND_WINDOW = (\d+)\n") == RESEND_WINDOW
    # a record without result_ttl is kept for the default the clients send (not stored)
    assert _stride("enqueue", r"local RESULT_TTL = '(\d+)'\n") == defaults.RESULT_TTL
    assert f"then {FETCH_FIELDS_PER_JOB} items per job" in source("fetch")


def test_every_outcome_is_one_the_ack_script_knows() -> None:
    ack = source("ack")
    for outcome in Outcome:
        assert f"outcome == '{outcome.value}'" in ack
    for ended in Ended:  # recorded by their own script, never sent to ack.lua
        assert f"outcome == '{ended.value}'" not in ack


def test_settlements_lay_out_their_ack_fields() -> None:
    assert Settlement.finished(b"42").ack_fields("j", "7") == ["j", "7", "finished", b"42"]
    assert len(Settlement.finished(b"42").ack_fields("j", "7")) == ACK_FIELDS_FINISHED
    retry = Settlement.retry("E: x", "tb", 1.5)
    assert retry.ack_fields("j", "7") == ["j", "7", "retry", "E: x", "tb", "", "+1500"]
    failed = Settlement.failed("E: x")
    assert failed.reason == "E: x"
    assert len(failed.ack_fields("j", "1")) == ACK_FIELDS_OTHER
    assert Outcome.RETRY.metric_label == "retried" and Outcome.FAILED.metric_label == "failed"


def test_fetch_reply_is_parsed_into_typed_jobs() -> None:
    queues = [QueueKeys.of("a"), QueueKeys.of("b")]
    raw = [3, 250, 1, b"id1", 12, b'{"task":"t"}', 0, 1700, 1, 0, b"id2", 13, b"{}", 2, 1800, 3]
    reply = parse_fetch_reply(raw, queues)
    assert reply.remaining == 3 and reply.wait_ms == 250
    assert [(j.queue.name, j.id, j.lease, j.attempts, j.deliveries) for j in reply.jobs] == [
        ("b", "id1", "12", 0, 1),
        ("a", "id2", "13", 2, 3),
    ]
    keys, args = fetch_args("w1", 4, 30000, 0, 15000, queues)
    assert len(keys) == 16 and args[:6] == ["w1", 4, 30000, 0, 15000, 2]
    assert args[6:8] == [q.base for q in queues] and args[8:] == [0, ""]
    assert "the ms until something held back may run" in source("fetch")


def test_heartbeat_reply_tells_aborted_from_lost() -> None:
    assert parse_heartbeat_reply([b"!a", b"b"]) == [("a", True), ("b", False)]
    assert "(f and f[1] == 'aborted') and ('!' .. id) or id" in source("heartbeat")


def test_enqueue_plan_groups_by_queue_and_keeps_the_callers_order() -> None:
    calls = [Call("t.add", (i,), queue=("a", "b")[i % 2]) for i in range(5)]
    plan = plan_enqueue(calls, prefix="p")
    assert plan.queues == ("a", "b")
    assert [q for q, _ in plan.targets] == ["a", "b", "a", "b", "a"]
    assert len(set(plan.job_ids)) == 5
    (script_a, keys_a, args_a), (_, _, args_b) = plan.calls
    assert script_a is LUA["enqueue"] and keys_a == QueueKeys.of("a", "p").script_keys
    # base, groups, the call's send token, then per group: count, priority, due,
    # max_deliveries, result_ttl, control, and (id, payload) per job; calls with the same
    # options share a group
    assert ENQUEUE_HEADER == 3
    assert args_a[:2] == ["p:{a}:", 1] and args_b[:2] == ["p:{b}:", 1] and args_b[3] == 2
    assert len({args_a[2], args_b[2]}) == 2  # a token per call
    assert args_a[3:9] == [3, 5, "0", 5, 86_400, b""]
    assert args_a[9] == plan.job_ids[0]
    assert orjson.loads(args_a[10]) == {"task": "t.add", "args": [0]}  # empty kwargs left out
    assert [job[0] for job in laid_out(args_a)] == plan.job_ids[0::2]


def test_enqueue_plan_groups_calls_that_share_options_and_batches_big_ones() -> None:
    calls = [Call("t.x", (i,), priority=1 if i in (2, 3) else None) for i in range(6)]
    (_, _, args), *_ = plan_enqueue(calls).calls
    assert args[1] == 3  # default, priority 1, default again: three groups in call order
    jobs = laid_out(args)
    assert [job[2] for job in jobs] == [5, 5, 1, 1, 5, 5]
    assert [orjson.loads(job[1])["args"] for job in jobs] == [[i] for i in range(6)]
    big = plan_enqueue([Call("t.x", (i,)) for i in range(2 * ENQUEUE_BATCH + 1)])
    assert [len(laid_out(a)) for _, _, a in big.calls] == [ENQUEUE_BATCH, ENQUEUE_BATCH, 1]
    assert [j[0] for _, _, a in big.calls for j in laid_out(a)] == big.job_ids
    assert big.job_ids == sorted(big.job_ids)  # creation order, for FIFO within a score


def test_enqueue_plan_applies_task_defaults_and_call_overrides() -> None:
    opts = TaskOptions(queue="slow", priority=2, result_ttl=60, max_deliveries=3)
    plan = plan_enqueue(
        [Call("t.x"), Call("t.x", priority=9, delay=2, timeout=5)],
        defaults_for=lambda name: opts,
    )
    assert plan.queues == ("slow",)
    first, second = laid_out(plan.calls[0][2])
    assert first[2:6] == (2, "0", 3, 60)
    assert second[2:6] == (9, "+2000", 3, 60)
    assert orjson.loads(second[1])["options"] == {"timeout": 5}


def test_enqueue_plan_refuses_a_bad_call_naming_the_field_and_plans_nothing() -> None:
    with pytest.raises(ValueError, match="priority must be an integer from 0"):
        plan_enqueue([Call("t.x"), Call("t.x", priority=10)])
    with pytest.raises(ValueError, match="priority"):
        plan_enqueue([Call("t.x", priority=True)])  # a bool is not a priority
    with pytest.raises(ValueError, match="backoff"):
        plan_enqueue(
            [Call("t.x", backoff_min=500)],
            defaults_for=lambda name: TaskOptions(),
        )


def test_only_arguments_json_cannot_refuse_are_encoded_after_batches_leave() -> None:
    from kubeq.client.enqueue import sure_to_encode

    assert sure_to_encode((1, "a", 2.5, True, None, -(1 << 63), (1 << 64) - 1), {"k": "v"})
    for bad in ("\ud800", "é", 1 << 64, float("nan"), float("inf"), [1], {"a": 1}, b"x"):
        assert not sure_to_encode((bad,), {}), bad
        assert not sure_to_encode((), {"k": bad}), bad
    assert not sure_to_encode((), {"é": 1})


def test_a_plan_encodes_deferred_calls_as_it_would_have_at_once() -> None:
    import kubeq

    app = kubeq.App("redis://127.0.0.1:1/0")

    @app.task
    def add(a: object, b: object = 0) -> None: ...

    calls = [add.s(1, b="x"), add.s(2, b=[1, 2]), add.s("é"), add.s(None)]
    plan = plan_enqueue(calls, defaults_for=app.defaults_for)
    assert [orjson.loads(p) for p in plan.payloads] == [
        {"task": add.name, "args": [1], "kwargs": {"b": "x"}},
        {"task": add.name, "args": [2], "kwargs": {"b": [1, 2]}},
        {"task": add.name, "args": ["é"]},  # empty kwargs left out
        {"task": add.name, "args": [None]},
    ]
    assert [job[1] for job in laid_out(plan.calls[0][2])] == list(plan.payloads)
