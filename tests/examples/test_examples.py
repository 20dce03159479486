"""Every runnable example, run as its README says: real workers, real Redis, real HTTP.

The scraping example fetches from a local HTTP server (no outside network); the web app
runs under `flask run`; thumbnails go through the worker's process pool; the FastAPI example
runs under `uvicorn --workers 2`, the Django one under `manage.py runserver` with its own
SQLite database.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redisserver import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.redis


Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn(redis_url: str, tmp_path: Path) -> Iterator[Spawn]:
    """spawn(example, *argv) runs a command in an example's folder with the test Redis."""
    procs: list[subprocess.Popen[bytes]] = []

    def run(example: str, *argv: str) -> subprocess.Popen[bytes]:
        env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "PATH": f"{BIN}:{os.environ['PATH']}"}
        log = open(tmp_path / f"{example}-{len(procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            list(argv), cwd=EXAMPLES / example, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        procs.append(proc)
        return proc

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_client(redis_url: str, example: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url}
    return subprocess.run(
        [sys.executable, *argv],
        cwd=EXAMPLES / example,
        env=env,
        text=True,
        capture_output=True,
        timeout=240,
        check=False,
    )


def test_quickstart_demo() -> None:
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / "01-quickstart" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "3000/3000 results present" in out.stdout
    assert "sent 'thumbnails are on their way'" in out.stdout


@pytest.fixture
def sites() -> Iterator[str]:
    """A local web server with five pages; /missing answers 404."""

    class Pages(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/site"):
                body = f"<html><title>Page {self.path[5:]}</title><p>hello</p></html>".encode()
                self.send_response(200)
            else:
                body = b"not here"
                self.send_response(404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_web_scraping_fan_out(redis_url: str, spawn: Spawn, sites: str) -> None:
    spawn("02-web-scraping", "kubeq", "worker", "scraper", "--concurrency", "16")
    spawn("02-web-scraping", "kubeq", "worker", "scraper", "--concurrency", "16")
    urls = [f"{sites}/site{i}" for i in range(5)] + [f"{sites}/missing"]
    out = run_client(redis_url, "02-web-scraping", "run.py", *urls)
    assert out.returncode == 0, out.stdout + out.stderr
    for i in range(5):
        assert "200 " in out.stdout and f"/site{i}  'Page {i}'" in out.stdout
    assert "404" in out.stdout and "6 sites in" in out.stdout and ", 0 failed" in out.stdout


class _PoliteSite:
    """A local site that answers slowly and counts the requests it has in flight."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.in_flight = self.most = self.served = 0
        owner = self

        class Slow(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with owner.lock:
                    owner.in_flight += 1
                    owner.most = max(owner.most, owner.in_flight)
                time.sleep(0.5)
                with owner.lock:
                    owner.in_flight -= 1
                    owner.served += 1
                body = f"<html><title>{self.path}</title></html>".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_web_scraping_no_site_sees_more_than_its_limit(redis_url: str, spawn: Spawn) -> None:
    sites = [_PoliteSite() for _ in range(3)]
    try:
        for _ in range(2):  # 32 threads that would all hit one site without the limit
            spawn("02-web-scraping", "kubeq", "worker", "scraper", "--concurrency", "16")
        # site by site: at 10 fetches a second and 0.5 s each, one site alone would see 5
        # requests at once without its concurrency limit
        urls = [f"{s.url}/page{i}" for s in sites for i in range(10)]
        out = run_client(redis_url, "02-web-scraping", "run.py", *urls)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "30 sites in" in out.stdout and ", 0 failed" in out.stdout
        for s in sites:
            assert s.served == 10
            assert s.most == 2  # the per-site limit, reached and never passed
    finally:
        for s in sites:
            s.server.shutdown()


def test_web_scraping_unreachable_site_is_retried_then_dead_lettered(
    redis_url: str, spawn: Spawn
) -> None:
    spawn("02-web-scraping", "kubeq", "worker", "scraper")
    out = run_client(redis_url, "02-web-scraping", "run.py", f"http://127.0.0.1:{free_port()}/")
    assert out.returncode == 1
    assert "failed 3 of 3 attempts: URLError" in out.stdout and "1 failed" in out.stdout


def test_image_thumbnails_in_the_process_pool(redis_url: str, spawn: Spawn, tmp_path: Path) -> None:
    from PIL import Image

    sources = []
    for n, (w, h) in enumerate([(2000, 1500), (900, 1600)]):
        path = tmp_path / f"photo{n}.png"
        Image.new("RGB", (w, h), (n * 90, 120, 200)).save(path)
        sources.append(str(path))
    spawn("03-thumbnails", "kubeq", "worker", "thumbs", "--concurrency", "2")
    out_dir = tmp_path / "thumbs"
    out = run_client(redis_url, "03-thumbnails", "run.py", str(out_dir), *sources)
    assert out.returncode == 0, out.stdout + out.stderr
    for n, source in enumerate(sources):
        paths = [str(out_dir / f"photo{n}-{size}.jpg") for size in (64, 256, 1024)]
        for size, path in zip((64, 256, 1024), paths, strict=True):
            with Image.open(path) as thumb:
                assert max(thumb.size) == size
        # the chord's callback recorded the finished set: every size, in the chord's order
        manifest = out_dir / f"photo{n}.json"
        assert json.loads(manifest.read_text()) == {"source": source, "thumbnails": paths}
        assert f"{source} -> {', '.join(paths)} (recorded in {manifest})" in out.stdout
    # one workflow per image: 2 x (3 resizes + 1 callback), each callback ran once
    import kubeq

    app = kubeq.App(redis_url)
    try:
        stats = app.queue("thumbnails").stats()
        assert (stats.backlog, stats.in_flight, stats.deferred, stats.dead) == (0, 0, 0, 0)
        finished = [
            key
            for key in app.redis.scan_iter(match="kubeq:{thumbnails}:job:*")
            if app.redis.hget(key, "status") == b"finished"
        ]
        assert len(finished) == 8, finished
        callbacks = [k for k in finished if b"record_set" in (app.redis.hget(k, "payload") or b"")]
        ids = [k.decode().rsplit(":", 1)[1] for k in callbacks]
        assert [app.job(i, queue="thumbnails").info().attempts for i in ids] == [1, 1]
    finally:
        app.close()


def test_web_app_answers_202_and_reports_status(redis_url: str, spawn: Spawn) -> None:
    port = free_port()
    spawn("04-web-app", "kubeq", "worker", "webapp")
    spawn("04-web-app", "flask", "--app", "webapp", "run", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    call = functools.partial(_http, base)

    deadline = time.monotonic() + 60
    while True:
        try:
            status, body = call("POST", "/reports", {"customer": "acme", "months": 3})
            break
        except urllib.error.URLError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    assert status == 202 and str(body["status_url"]).startswith("/reports/")
    deadline = time.monotonic() + 60
    while (result := call("GET", str(body["status_url"])))[1].get("status") != "finished":
        assert result[1].get("status") in ("queued", "active", "scheduled"), result
        progress = result[1].get("progress")
        assert progress is None or progress in [
            {"months_done": m, "months": 3} for m in (1, 2, 3)
        ], result
        assert time.monotonic() < deadline, result
        time.sleep(0.1)
    assert result[1]["report"] == {"customer": "acme", "months": 3, "orders": 21}
    assert result[1]["progress"] == {"months_done": 3, "months": 3}
    assert call("POST", "/reports", {"customer": "acme", "months": 500}) == (
        400,
        {"error": "'months' must be an integer from 1 to 120"},
    )
    assert call("GET", "/reports/nope")[0] == 404
    assert call("GET", "/reports/bad%20id")[0] == 400


def _http(base: str, method: str, path: str, body: object = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        base + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def _until_up(base: str, path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _http(base, "GET", path)
            return
        except (urllib.error.URLError, ConnectionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_fastapi_async_client_under_uvicorn_workers(spawn: Spawn) -> None:
    port = free_port()
    spawn("05-fastapi", "kubeq", "worker", "reports", "--concurrency", "8")
    spawn("05-fastapi", "uvicorn", "reports:api", "--workers", "2", "--port", str(port))
    base = f"http://127.0.0.1:{port}"
    _until_up(base, "/reports/nope-1")
    # many requests spread over both uvicorn processes, each awaiting a job's result
    for x in range(20):
        assert _http(base, "GET", f"/sum?x={x}&y=1") == (200, {"sum": x + 1})
    status, body = _http(base, "POST", "/reports", {"customer": "acme", "months": 6})
    assert status == 202 and body["status_url"] == f"/reports/{body['report_id']}"
    deadline = time.monotonic() + 60
    seen: list[int] = []
    while (result := _http(base, "GET", body["status_url"]))[1]["status"] != "finished":
        assert result[0] == 200 and result[1]["status"] == "running", result
        seen.append(result[1]["progress"]["done"])
        assert time.monotonic() < deadline, result
        time.sleep(0.05)
    assert seen == sorted(seen) and all(0 <= n < 6 for n in seen)  # progress only grows
    assert result[1]["progress"] == {"done": 6, "total": 6}
    assert result[1]["report"]["orders"] == sum(7 + m for m in range(1, 7))
    status, error = _http(base, "POST", "/reports", {"customer": "acme", "months": 99})
    assert status == 422 and error["detail"][0]["loc"] == ["body", "months"]
    assert _http(base, "GET", "/reports/0123-4")[0] == 404
    assert _http(base, "GET", "/reports/bad%20id-4")[0] == 400


def test_django_enqueues_on_commit(
    redis_url: str, spawn: Spawn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "SHOP_DB": str(tmp_path / "shop.db")}
    here = EXAMPLES / "06-django"
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate"],
        cwd=here,
        env=env,
        capture_output=True,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr
    monkeypatch.setenv("SHOP_DB", env["SHOP_DB"])  # for the processes spawn() starts
    port = free_port()
    spawn("06-django", "kubeq", "worker", "orders.tasks")
    spawn("06-django", sys.executable, "manage.py", "runserver", "--noreload", str(port))
    base = f"http://127.0.0.1:{port}"
    _until_up(base, "/orders/1")
    status, body = _http(base, "POST", "/orders", {"customer": "ada", "total_cents": 1200})
    assert status == 202, body
    deadline = time.monotonic() + 60
    while (order := _http(base, "GET", body["status_url"])[1])["status"] != "confirmed":
        assert order["status"] == "new" and time.monotonic() < deadline, order
        time.sleep(0.1)
    assert order["job"]  # the job enqueued after the commit, by on_commit
    assert _http(base, "POST", "/orders", {"customer": "ada", "total_cents": 0}) == (
        400,
        {"error": "'total_cents' must be a positive integer"},
    )
    out = run_client(redis_url, "06-django", "commit_demo.py")
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.splitlines() == [
        "inside the transaction: 0 jobs enqueued",
        "after the commit: 1 job enqueued",
        "the worker: order 2 for ada confirmed",
        "order 2 is confirmed",
        "after a rollback: 0 orders, 0 jobs enqueued",
    ]
