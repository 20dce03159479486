"""kubeq's test suite, one package per tier (tests/redis, tests/operator, ...).

Every folder is a package, so pytest imports each test, conftest and helper module under its
own dotted name (``tests.redis.conftest``, ``tests.operator.opsupport``): any combination of
tiers runs in one ``pytest`` call without two ``conftest`` or ``helpers`` modules clashing.
Helpers are imported by that name (``from tests.redis.helpers import wait_until``); shared
ones live in tests/support. The only modules imported by a bare name are the task modules
that ``kubeq worker`` processes import (``qtasks``, ``ftasks``, ...): a task's name is its
module's name, so the test process must use the same one (see tests/redis/__init__.py).
tests/unit/test_test_layout.py keeps it that way.
"""
