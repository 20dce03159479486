"""kubeq's web dashboard (``kubeq dashboard``, needs ``pip install 'kubeq[dashboard]'``).

Queues, workers, jobs, dead letters and the autoscaler, live in a browser; see
docs/dashboard.md. Importing this package pulls in the ASGI stack (Starlette, uvicorn,
Jinja2), so the worker and the CLI import it only when the dashboard is asked for.
"""

from __future__ import annotations

from kubeq.dashboard.app import create_app
from kubeq.dashboard.state import Config

__all__ = ["Config", "create_app"]
