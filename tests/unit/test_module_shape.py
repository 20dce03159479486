"""Every Python module of the project (the package, tests, bench, examples, tools) stays
under 400 lines and opens with a docstring saying what it is for."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 400
SKIP = {"node_modules", "build", "dist", "__pycache__"}


def modules() -> list[Path]:
    out = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT).parts
        if any(p.startswith(".") or p in SKIP for p in parts[:-1]):
            continue  # the venv, caches, build output
        out.append(path)
    return out


def test_the_walk_sees_the_package_and_the_tests() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in modules()}
    assert "src/kubeq/__init__.py" in names and "tests/unit/test_module_shape.py" in names


def test_every_module_is_under_400_lines() -> None:
    long = {
        p.relative_to(ROOT).as_posix(): n
        for p in modules()
        if (n := len(p.read_text().splitlines())) > LIMIT
    }
    assert not long, f"split these modules (more than {LIMIT} lines): {long}"


def test_every_module_says_what_it_is_for() -> None:
    bare = [
        p.relative_to(ROOT).as_posix()
        for p in modules()
        if p.read_text().strip() and not ast.get_docstring(ast.parse(p.read_text()))
    ]
    assert not bare, f"give these modules a docstring: {bare}"
