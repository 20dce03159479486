"""``python -m kubeq_operator [ARGS]``: the same as ``kubeq operator [ARGS]``."""

import sys

from kubeq_operator.main import main

sys.exit(main(sys.argv[1:]))
