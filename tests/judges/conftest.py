"""The judges' tests. The monitoring test runs the real operator and a worker pod on the local
cluster, with the operator tests' fixtures (tests/operator/opsupport.py)."""

from tests.operator.opsupport import api, operator

__all__ = ["api", "operator"]
