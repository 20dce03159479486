"""``python bench/systems/cli.py SYSTEM SCENARIO [options]``: one scenario, one JSON line.

The tasks live in ``SYSTEM_bench.py`` (never in ``__main__``, so workers can import them).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common

common.main()
