"""A stand-in that hides the OpenTelemetry SDK: ``run.py --variant
no-otel-sdk=bench/variants/no-otel-sdk`` puts this directory first on the worker's and the
client's PYTHONPATH. ``opentelemetry`` is a namespace package, so ``opentelemetry.sdk`` is
found here first and refuses; redis-py 8 imports the SDK at ``import redis`` when it is
installed (inside ``try/except ImportError``). The project venv has the SDK for the tracing
tests; ``pip install kubeq`` (or ``kubeq[otel]``, the API only) does not, and the peers'
venvs do not either: this variant is kubeq's worker as such an install runs it."""

raise ImportError("opentelemetry-sdk hidden by bench/variants/no-otel-sdk for an A/B")
