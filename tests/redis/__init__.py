"""The redis tier: kubeq against a real redis-server and real `kubeq worker` processes.

Its folder is on ``sys.path`` for one module, ``qtasks``: the worker processes import it by
that bare name (``kubeq worker qtasks``, PYTHONPATH=tests/redis), and a task's name is its
module's name (``qtasks.add``), so the tests must import the same module under the same name
to enqueue what the workers run. Every other module here is imported as ``tests.redis.X``.
"""

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.append(_HERE)
