"""Compiled bytecode for every interpreter a bench run starts, before the first timed process.

Peers installed by pip ship their ``.pyc`` files; uv installs the project venv without them,
and a shell with ``PYTHONDONTWRITEBYTECODE=1`` never writes them. A worker that compiles every
module it imports at each start pays for it in start-up time and keeps the freed heap as
resident memory, so each system is given the same footing: its venv's site-packages, the
kubeq package it imports and any ``--variant`` directory are compiled first (as the worker
image's Dockerfile does). Compiling is idempotent: files already current are left alone.
"""

from __future__ import annotations

import subprocess
import time

COMPILE = """
import compileall, importlib.util, os, site, sys
dirs = [p for p in site.getsitepackages() if os.path.isdir(p)] + sys.argv[1:]
spec = importlib.util.find_spec("kubeq")
if spec is not None and spec.origin:
    dirs.append(os.path.dirname(spec.origin))
ok = all(compileall.compile_dir(d, quiet=1, workers=0) for d in dirs)
sys.exit(0 if ok else 1)
"""


def compile_all(python: str, extra: list[str] | None = None) -> float:
    """Compile ``python``'s site-packages, its ``kubeq`` and ``extra`` directories; seconds taken.

    A file that does not compile (a package's test data written for another Python) is left
    as it is: the interpreter would not import it either.
    """
    t0 = time.monotonic()
    subprocess.run([python, "-c", COMPILE, *(extra or [])], check=False, capture_output=True)
    return round(time.monotonic() - t0, 1)
