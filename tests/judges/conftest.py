"""The judges' tests. The monitoring test runs the real operator and a worker pod on the local
cluster, with the operator tests' fixtures (tests/operator/opsupport.py)."""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "operator"))

from opsupport import api, operator  # noqa: E402

__all__ = ["api", "operator"]
