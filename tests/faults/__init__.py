"""The fault tier: real `kubeq worker` processes reaching Redis through Toxiproxy.

Its folder is on ``sys.path`` for one module, ``ftasks``: the worker processes import it by
that bare name (``kubeq worker ftasks``, PYTHONPATH=tests/faults), and a task's name is its
module's name (``ftasks.work``), so the tests must import the same module under the same
name to enqueue what the workers run. Every other module here is imported as ``tests.faults.X``.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
