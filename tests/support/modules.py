"""Loading a Python file that is not an importable package module (a bench script, an
example) under a name of the caller's choice, registered in ``sys.modules`` so that the
dataclasses and pickles it defines resolve their module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def load_file(name: str, path: Path) -> ModuleType:
    """The module in ``path``, run and registered as ``name``."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_bench(script: str, name: str | None = None) -> ModuleType:
    """``bench/<script>.py``, registered as ``name`` (default: ``script``)."""
    return load_file(name or script, BENCH / f"{script}.py")
