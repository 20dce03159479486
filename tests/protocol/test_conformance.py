"""The protocol conformance suite (docs/protocol.md, version 1): what a client writes to a real
Redis, and what it reads back from jobs that real Python workers ran.

Each test drives the client under test (``client`` fixture, tests/protocol/conftest.py) and
checks Redis itself against the documented keys, payload and job fields.
"""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest
import redis

from kubeq.store.scripts import LUA, part, source
from tests.protocol.conftest import ROOT, Client
from tests.redis.helpers import wait_until

JOB_ID = "conf-1"


@pytest.fixture
def r(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


def test_enqueue_writes_the_documented_job(client: Client, r: redis.Redis, prefix: str) -> None:
    job = {"task": "qtasks.add", "args": [2, 3], "kwargs": {}, "id": JOB_ID}
    reply = client("enqueue", "proto", jobs=[job])
    assert reply["ids"] == [JOB_ID]
    h = r.hgetall(f"{prefix}:{{proto}}:job:{JOB_ID}")
    assert h[b"status"] == b"queued"
    # a field at its default may be absent: a reader takes it as the default
    assert h.get(b"priority", b"5") == b"5"
    assert h.get(b"result_ttl", b"86400") == b"86400"
    payload = json.loads(h[b"payload"])
    got = (payload["task"], payload.get("args", []), payload.get("kwargs", {}))
    assert got == ("qtasks.add", [2, 3], {})
    assert r.zscore(f"{prefix}:{{proto}}:ready", JOB_ID) is not None
    assert r.sismember(f"{prefix}:queues", "proto")


def test_a_client_chooses_ids_when_none_is_given(client: Client, r: redis.Redis) -> None:
    reply = client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 1]}] * 3)
    ids = reply["ids"]
    assert len(set(ids)) == 3
    for job_id in ids:
        assert 1 <= len(job_id) <= 200
        assert r.hget(f"conf:{{proto}}:job:{job_id}", "status") == b"queued"


def test_options_land_where_the_worker_reads_them(client: Client, r: redis.Redis) -> None:
    job = {
        "task": "qtasks.add",
        "args": [1, 2],
        "id": JOB_ID,
        "priority": 9,
        "timeout": 30,
        "max_attempts": 2,
        "result_ttl": 600,
        "delay": 3600,
    }
    client("enqueue", "proto", jobs=[job])
    h = r.hgetall(f"conf:{{proto}}:job:{JOB_ID}")
    assert h[b"status"] == b"scheduled"
    assert (h[b"priority"], h[b"result_ttl"]) == (b"9", b"600")
    options = json.loads(h[b"payload"])["options"]
    assert (options["timeout"], options["max_attempts"]) == (30, 2)
    assert r.zscore("conf:{proto}:delayed", JOB_ID) is not None
    assert r.zscore("conf:{proto}:ready", JOB_ID) is None


def test_a_live_id_is_enqueued_once(client: Client, r: redis.Redis) -> None:
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 2], "id": JOB_ID}])
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [7, 7], "id": JOB_ID}])
    payload = json.loads(r.hget(f"conf:{{proto}}:job:{JOB_ID}", "payload") or b"")
    assert payload["args"] == [1, 2]
    assert r.zcard("conf:{proto}:ready") == 1


def test_a_python_worker_runs_the_job_and_the_client_reads_its_result(
    client: Client, worker: object
) -> None:
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [20, 22], "id": JOB_ID}])
    worker("proto")  # type: ignore[operator]
    reply = client("result", "proto", id=JOB_ID, wait=60)
    assert reply == {"status": "finished", "result": 42}
    assert client("status", "proto", id=JOB_ID) == {"status": "finished"}


def test_a_failed_job_reports_its_error(client: Client, worker: object) -> None:
    client("enqueue", "proto", jobs=[{"task": "qtasks.not_retried", "id": JOB_ID}])
    worker("proto")  # type: ignore[operator]
    reply = client("result", "proto", id=JOB_ID, wait=60)
    assert reply["status"] == "failed"
    assert reply["error"]


def test_a_result_wait_ends_at_its_deadline_when_the_job_has_not(client: Client) -> None:
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 2], "id": JOB_ID}])
    assert client("result", "proto", id=JOB_ID, wait=1) == {"status": "queued"}


def test_cancel_stops_a_job_that_has_not_started(client: Client, r: redis.Redis) -> None:
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 2], "id": JOB_ID}])
    assert client("cancel", "proto", id=JOB_ID) == {"stopped": True}
    assert client("status", "proto", id=JOB_ID) == {"status": "cancelled"}
    assert r.zcard("conf:{proto}:ready") == 0
    # nobody watched it: no done-list (a waiter sets the watch key first, docs/protocol.md)
    assert not r.exists(f"conf:{{proto}}:done:{JOB_ID}")
    assert client("cancel", "proto", id=JOB_ID) == {"stopped": False}


def test_a_watched_job_that_ends_pushes_its_done_list(client: Client, r: redis.Redis) -> None:
    """A waiter sets ``watch:<id>`` before it reads the status: the job's end then pushes the
    done-list its BLMOVE blocks on (docs/protocol.md, "Waiting for the end")."""
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 2], "id": JOB_ID}])
    r.set(f"conf:{{proto}}:watch:{JOB_ID}", "1", ex=60)
    assert client("cancel", "proto", id=JOB_ID) == {"stopped": True}
    assert r.llen(f"conf:{{proto}}:done:{JOB_ID}") == 1


def test_abort_stops_a_running_job(client: Client, worker: object, r: redis.Redis) -> None:
    job = {"task": "qtasks.abortable_thread", "args": ["proto"], "id": JOB_ID}
    client("enqueue", "proto", jobs=[job])
    worker("proto")  # type: ignore[operator]
    key = f"conf:{{proto}}:job:{JOB_ID}"
    wait_until(lambda: r.hget(key, "status") == b"active", 120, "the worker to start the job")
    stopped = client("cancel", "proto", id=JOB_ID, abort=True)
    assert stopped == {"stopped": True}, r.hgetall(key)
    assert client("result", "proto", id=JOB_ID, wait=30) == {"status": "aborted"}


def test_an_unknown_job_reads_as_unknown(client: Client) -> None:
    assert client("status", "proto", id="never-enqueued") == {"status": "unknown"}


GO = ROOT / "clients" / "go"
GENLUA = runpy.run_path(str(GO / "genlua.py"))


def test_the_go_clients_scripts_are_the_stores() -> None:
    """clients/go embeds the files genlua.py writes from kubeq's store: each script's full
    text; a copy that differs from the store's (a change in src/kubeq/store/lua not
    regenerated) fails here."""
    lua = GO / "kubeq" / "lua"
    files = list(GENLUA["SCRIPTS"])
    assert sorted(p.stem for p in lua.glob("*.lua")) == sorted(files), (
        f"clients/go/kubeq/lua holds other files than genlua.py writes: run `{GENLUA['COMMAND']}`"
    )
    stale = [n for n in files if (lua / f"{n}.lua").read_text() != source(n)]
    assert not stale, (
        f"clients/go/kubeq/lua/{{{','.join(stale)}}}.lua differ from src/kubeq/store/lua: "
        f"run `{GENLUA['COMMAND']}` and commit the result"
    )


def test_go_generate_writes_the_scripts_from_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generator the Go client's ``//go:generate`` runs copies exactly the store's files
    (run here in this process, as its command line would)."""
    assert "../genlua.py" in (GO / "kubeq" / "client.go").read_text()
    (tmp_path / "stray.lua").write_text("-- not a script of the store")
    monkeypatch.setattr(sys, "argv", ["genlua.py", "--out", str(tmp_path)])
    GENLUA["main"]()
    files = list(GENLUA["SCRIPTS"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{n}.lua" for n in files)
    for name in files:
        assert (tmp_path / f"{name}.lua").read_text() == source(name)
    assert all(source(n).endswith(part(n)) for n in files)


def test_a_client_sends_the_stores_script_by_its_sha(client: Client, r: redis.Redis) -> None:
    """What a client loads into Redis is the store's script to the byte: after a SCRIPT FLUSH
    its enqueue (EVALSHA, then EVAL of its own text on NOSCRIPT) leaves exactly the script
    whose SHA1 the Python client sends. For the Go client that proves it sends the text
    ``source`` makes."""
    r.script_flush()
    client("enqueue", "proto", jobs=[{"task": "qtasks.add", "args": [1, 2], "id": JOB_ID}])
    assert r.script_exists(LUA["enqueue"].sha) == [True], "the client sent another text"
    client("cancel", "proto", id=JOB_ID)
    assert r.script_exists(LUA["cancel"].sha) == [True], "the client sent another text"
