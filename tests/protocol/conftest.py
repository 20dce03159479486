"""Fixtures of the protocol conformance suite: ``client`` runs one request through the client
under test (``KUBEQ_PROTOCOL_CLIENT``, a command line; by default each test runs twice: with
kubeq's Python client, called in this process through the adapter's ``handle`` with the
request and reply passed as JSON text as a command's would be, and with the Go client of
clients/go, built here and run as a command), ``worker`` starts a real `kubeq worker qtasks`
on the suite's Redis."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import kubeq
from tests.protocol.pyclient import handle
from tests.redis.workers import HERE as QTASKS_DIR
from tests.redis.workers import KUBEQ

ROOT = Path(__file__).resolve().parents[2]

Client = Callable[..., dict[str, Any]]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "client_command" in metafunc.fixturenames:
        given = os.environ.get("KUBEQ_PROTOCOL_CLIENT")
        metafunc.parametrize(
            "client_command", [given] if given else ["python", "go"], indirect=True
        )


@pytest.fixture(scope="session")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The Go client's adapter (clients/go/cmd/kubeq-conformance), built once."""
    go = shutil.which("go")
    if go is None:
        pytest.fail("the Go toolchain is needed to build clients/go", pytrace=False)
    exe = tmp_path_factory.mktemp("go") / "kubeq-conformance"
    built = subprocess.run(
        [go, "build", "-o", str(exe), "./cmd/kubeq-conformance"],
        cwd=ROOT / "clients" / "go",
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    return [str(exe)]


@pytest.fixture
def client_command(request: pytest.FixtureRequest) -> list[str]:
    """The client under test as a command line (``[]``: kubeq's Python client, in process)."""
    if request.param == "python":
        return []
    if request.param == "go":
        command: list[str] = request.getfixturevalue("go_client")
        return command
    return shlex.split(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in item.path.resolve().parents:
            item.add_marker(pytest.mark.redis)


@pytest.fixture
def prefix() -> str:
    """Not the default: a client must put every key under the prefix it is given."""
    return "conf"


@pytest.fixture
def client(redis_url: str, prefix: str, client_command: list[str]) -> Iterator[Client]:
    """client(op, queue, **fields) -> the client's JSON reply to that request."""
    app = kubeq.App(redis_url, prefix=prefix)

    def call(op: str, queue: str, **fields: Any) -> dict[str, Any]:
        request = json.dumps({"op": op, "queue": queue, **fields})
        if not client_command:
            answer: dict[str, Any] = json.loads(json.dumps(handle(app, json.loads(request))))
            return answer
        done = subprocess.run(
            [*client_command, redis_url, prefix, request],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"client failed on {request}: {done.stderr}"
        reply: dict[str, Any] = json.loads(done.stdout)
        return reply

    yield call
    app.close()


@pytest.fixture
def worker(redis_url: str, prefix: str, tmp_path: Path) -> Iterator[Callable[[str], None]]:
    """worker(queue) starts a real Python worker of ``qtasks`` on that queue."""
    started: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "PYTHONPATH": str(QTASKS_DIR)}

    def start(queue: str) -> None:
        log = open(tmp_path / f"worker-{len(started)}.log", "wb")  # noqa: SIM115
        command = [KUBEQ, "--prefix", prefix, "worker", "qtasks", "--queue", queue]
        started.append(subprocess.Popen(command, env=env, cwd=QTASKS_DIR, stdout=log, stderr=log))
        log.close()

    yield start
    for proc in started:
        proc.kill()
        proc.wait()
