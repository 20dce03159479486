"""Fixtures of the dashboard tests: real `kubeq dashboard` and `kubeq worker` processes on the
test Redis, and Debian's headless Chromium driven through chromedriver (Selenium).

Screenshots go to ``.artifacts/dashboard/`` at the top of the checkout (ignored by git), so a
CI run keeps them as test artifacts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.redisserver import free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / ".artifacts" / "dashboard"
KUBEQ = str(Path(sys.executable).with_name("kubeq"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE not in item.path.resolve().parents or item.get_closest_marker("e2e"):
            continue
        if not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)


class Proc:
    """A child process with its log file, killed at teardown."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            args, env=env, cwd=HERE, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def _env(redis_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "KUBEQ_REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
    env.pop("KUBEQ_DASHBOARD_TOKEN", None)
    env["KUBECONFIG"] = str(HERE / "no-such-kubeconfig")  # no cluster unless a test gives one
    env.update(extra or {})
    return env


StartWorker = Callable[..., Proc]
StartDashboard = Callable[..., str]


@pytest.fixture
def start_worker(redis_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """start_worker("--queue", "q") -> a running `kubeq worker dtasks` process."""
    started: list[Proc] = []

    def start(*args: str) -> Proc:
        log = tmp_path / f"worker-{len(started)}.log"
        p = Proc([KUBEQ, "worker", "dtasks", *args], _env(redis_url), log)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def start_dashboard(redis_url: str, tmp_path: Path) -> Iterator[StartDashboard]:
    """start_dashboard("--read-only", env={...}) -> the base URL of a running dashboard."""
    started: list[Proc] = []

    def start(*args: str, env: dict[str, str] | None = None) -> str:
        port = free_port()
        log = tmp_path / f"dashboard-{len(started)}.log"
        cmd = [KUBEQ, "dashboard", "--port", str(port), *args]
        p = Proc(cmd, _env(redis_url, env), log)
        started.append(p)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if p.proc.poll() is not None:
                raise AssertionError(f"dashboard exited: {p.log()}")
            try:
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"dashboard did not answer: {p.log()}")

    yield start
    for p in started:
        p.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's chromium + chromium-driver, installed by `make chromium`)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    chromium = shutil.which("chromium")
    if not driver_path or not chromium:
        pytest.fail("chromium and chromedriver are missing: run `make chromium` (Debian packages)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,900",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def shot(browser: object) -> Callable[[str], Path]:
    """shot("overview") saves a screenshot of the current page as a test artifact.

    Also starts the test with no cookies: dashboards on other ports share the host's cookies.
    """
    browser.delete_all_cookies()  # type: ignore[attr-defined]

    def save(name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        browser.save_screenshot(str(path))  # type: ignore[attr-defined]
        return path

    return save
