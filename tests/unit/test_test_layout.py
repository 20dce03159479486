"""The suite's own layout: any tiers combine in one pytest call.

Two tiers' modules of the same bare name (``conftest``, ``helpers``) clash when pytest puts
both folders on ``sys.path``: whichever came first answers both imports. So every folder of
tests/ is a package, and a module of tests/ is imported by its package name
(``tests.redis.helpers``), never by its bare name, except the task modules that ``kubeq
worker`` processes import by name (see tests/__init__.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TASK_MODULES = {
    "qtasks",
    "ftasks",
    "dtasks",
    "e2e_tasks",
    "imgtasks",
    "leasetasks",
    "durtasks",
    "flowtasks",
    "qtasks_more",
    "pintasks",
    "qapp",
}
"""Imported by worker processes (and pods, images) by these names: they must stay bare
(``qtasks_more``, ``pintasks`` and ``qapp`` are imported by ``qtasks`` in those processes)."""


def _folders() -> list[Path]:
    return sorted({p.parent for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts})


def _module_names() -> set[str]:
    """The bare names of the modules of tests/ (what a folder on sys.path would expose)."""
    return {p.stem for p in TESTS.rglob("*.py") if p.stem != "__init__"} - TASK_MODULES


def test_every_folder_of_tests_is_a_package() -> None:
    assert [str(f) for f in _folders() if not (f / "__init__.py").exists()] == []


def test_modules_of_tests_are_imported_by_their_package_name() -> None:
    local = _module_names()
    bare: list[str] = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            bare += [
                f"{path.relative_to(TESTS)}:{node.lineno}: {m}"
                for m in modules
                if m.split(".")[0] in local
            ]
    assert bare == [], "import these as tests.<tier>.<module>"
