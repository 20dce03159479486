"""The model-based tier: Hypothesis state machines against the session's real redis-server.

Every test here needs Redis, so it is marked ``redis`` (``make test-redis`` runs it too).
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents and not item.get_closest_marker("redis"):
            item.add_marker(pytest.mark.redis)
