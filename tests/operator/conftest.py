"""Fixtures for the operator tests. Pure tests here need none; the cluster tests (marked
``cluster``) use ``operator`` (a running operator process, CRD installed) and ``api``.
"""

from tests.operator.opsupport import api, operator

__all__ = ["api", "operator"]
