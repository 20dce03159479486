"""The TaskQueue API's coordinates and the names kubeq writes on objects, in one place.

The group, version, plural and kind (``kubeq.crd``, which the dashboard reads too) appear in
the kopf registration, in every API call on a TaskQueue, in the demo and in the tests; the
labels and annotations in the Deployment the operator builds, in its kopf index and in the
pods it marks. Each is spelled once, so a rename (e.g. ``v1alpha1`` -> ``v1beta1``) is one
edit. The CRD itself lives in ``charts/kubeq/crds/`` (copied to ``manifests/crd/``);
``tests/unit/test_defaults.py`` reads it with these names.
"""

from __future__ import annotations

from kubeq.crd import API_VERSION, GROUP, KIND, PLURAL, VERSION

__all__ = ["API_VERSION", "GROUP", "KIND", "PLURAL", "VERSION"]
CRD_NAME = f"{PLURAL}.{GROUP}"
"""The CustomResourceDefinition's name (``kubectl get crd taskqueues.kubeq.dev``)."""

FINALIZER = f"{GROUP}/operator"
"""kopf's finalizer on each TaskQueue (removed when the operator has let go of it)."""

LABEL_TASKQUEUE = f"{GROUP}/taskqueue"
"""On the worker Deployment and its pods: the TaskQueue they belong to."""
LABEL_COMPONENT = "app.kubernetes.io/component"
COMPONENT_WORKER = "worker"
COMPONENT_POOL = "pool-worker"
"""The component of a worker pool's Deployment and pods: not ``worker``, so the TaskQueue's
own Deployment (whose selector is the TaskQueue and ``worker``) never selects a pool's pods."""
LABEL_POOL = f"{GROUP}/pool"
"""On a worker pool's Deployment and its pods: the pool's name (spec.pools[].name)."""
LABEL_MANAGED = "app.kubernetes.io/managed-by"
MANAGED_BY = "kubeq-operator"
"""The value of ``LABEL_MANAGED`` on what the operator creates (its kopf index selects it)."""
ANNOTATION_HASH = f"{GROUP}/worker-hash"
"""On the Deployment and its pod template: the hash of the worker spec (a change rolls)."""
LABEL_VERSION = f"{GROUP}/version"
"""With ``spec.rollout.strategy: Versioned``: on a worker Deployment, its selector and its pods,
the version (the worker hash's first characters) they run (versioned.py)."""
