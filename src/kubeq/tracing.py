"""Optional OpenTelemetry: the caller's trace travels in the job, the worker continues it.

Installed with ``pip install kubeq[otel]``; without ``opentelemetry-api`` every function here
is a no-op and payloads carry nothing extra. With it:

- at enqueue, ``inject`` copies the active span's W3C trace context (``traceparent``, and
  ``tracestate`` when set) into the payload's ``trace`` field (none when no span is active);
- in the worker, ``traced`` runs one attempt inside a CONSUMER span named ``process <queue>``
  whose parent is that context, with the messaging semantic conventions' attributes
  (``messaging.system``, ``messaging.destination.name``, ``messaging.message.id``,
  ``messaging.operation.type``) and kubeq's own (``kubeq.task``, ``kubeq.job.attempt``,
  ``kubeq.job.outcome``). A failed or retried attempt sets the span's status to ERROR.

The tracer provider and exporter are the application's choice (the OpenTelemetry SDK, an
OTLP exporter...); kubeq only uses the API, as instrumentation libraries should.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable
from typing import Any, Protocol

from kubeq import serialization
from kubeq.outcomes import Settlement

try:
    from opentelemetry import propagate, trace
except ImportError:  # the otel extra is not installed
    propagate = trace = None  # type: ignore[assignment]

ENABLED = trace is not None
"""True when opentelemetry-api is importable."""
_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider) if ENABLED else ()
"""The API's placeholders until the application sets a tracer provider."""
_UNKNOWN = object()
SYSTEM = "kubeq"
"""``messaging.system`` of every span."""


class _Queue(Protocol):
    @property
    def name(self) -> str: ...


class _Job(Protocol):
    @property
    def queue(self) -> _Queue: ...
    @property
    def id(self) -> str: ...
    @property
    def payload(self) -> bytes: ...
    @property
    def attempts(self) -> int: ...


class Attempt(Protocol):
    """What ``traced`` reads of one delivery (the worker's ``Delivery`` is one)."""

    @property
    def job(self) -> _Job: ...
    @property
    def task_name(self) -> str: ...


def inject() -> dict[str, str] | None:
    """The active span's trace context for a payload, or None (no OTel, or no span)."""
    if not ENABLED or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def _carrier(payload: bytes) -> dict[str, str]:
    if b'"trace"' not in payload:  # the common case costs one substring search
        return {}
    try:
        found = serialization.loads(payload).get("trace")
    except (ValueError, AttributeError):
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): str(v) for k, v in found.items() if isinstance(v, str)}


_ENV_PROVIDER = ENABLED and "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""A provider named by the environment, which OpenTelemetry builds on first use."""


def _sdk_configured() -> bool:
    """Whether the application has set a tracer provider. OpenTelemetry's own lookup reads
    the environment on every call until one is set (a few % of a no-op job's time); the
    module's global says the same for the cost of one attribute read (an OpenTelemetry
    without that global gets the public lookup)."""
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _ENV_PROVIDER:
        return False
    return not isinstance(trace.get_tracer_provider(), _NO_PROVIDER)


def traced(d: Attempt, attempt: Awaitable[Settlement]) -> Awaitable[Settlement]:
    """One attempt of ``d`` to await, inside a consumer span when OTel is installed and an
    SDK is configured; else the attempt itself (no span objects, and no coroutine more for
    each job's task to step through, on the hot path)."""
    if not ENABLED or not _sdk_configured():
        return attempt
    return _traced(d, attempt)


async def _traced(d: Attempt, attempt: Awaitable[Settlement]) -> Settlement:
    job = d.job
    tracer = trace.get_tracer("kubeq")
    attributes: dict[str, Any] = {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": job.queue.name,
        "messaging.message.id": job.id,
        "kubeq.job.attempt": job.attempts + 1,
    }
    with tracer.start_as_current_span(
        f"process {job.queue.name}",
        context=propagate.extract(_carrier(job.payload)),
        kind=trace.SpanKind.CONSUMER,
        attributes=attributes,
    ) as span:
        settlement = await attempt
        span.set_attribute("kubeq.task", d.task_name)
        span.set_attribute("kubeq.job.outcome", settlement.outcome.value)
        if settlement.outcome.value in ("retry", "failed"):
            error = settlement.value
            text = error.decode("utf-8", "replace") if isinstance(error, bytes) else error
            span.set_status(trace.Status(trace.StatusCode.ERROR, text))
        return settlement
