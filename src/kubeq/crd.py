"""The TaskQueue API's coordinates: its group, version, plural and kind.

The operator serves this API and the dashboard's Scaling page reads it; both take the names
from here. The names the operator writes on objects (labels, annotations, its finalizer) are
in ``kubeq_operator.crd``. The CRD itself lives in ``charts/kubeq/crds/``.
"""

from __future__ import annotations

GROUP = "kubeq.dev"
VERSION = "v1alpha1"
PLURAL = "taskqueues"
KIND = "TaskQueue"
API_VERSION = f"{GROUP}/{VERSION}"
