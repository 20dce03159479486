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
OTLP exporter...); kubeq only uses the API, as instrumentation libraries should, and only
once the application has imported it (setting a provider or starting a span does) or the
environment names a provider (``OTEL_PYTHON_TRACER_PROVIDER``): a process that does not
trace never loads the API's trace and propagation modules for kubeq.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Awaitable
from types import ModuleType
from typing import Any, Protocol

from kubeq import serialization
from kubeq.outcomes import Settlement


def _installed() -> bool:
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):  # the otel extra is not installed (or hidden)
        return False


ENABLED = _installed()
"""True when opentelemetry-api is importable."""
_ENV_PROVIDER = ENABLED and "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
"""A provider named by the environment, which OpenTelemetry builds on first use."""
_UNKNOWN = object()
SYSTEM = "kubeq"
"""``messaging.system`` of every span."""


def _trace() -> ModuleType | None:
    """OpenTelemetry's trace API once this process has imported it, else None. An
    application that sets a tracer provider or starts a span has imported it, so until then
    no span can be active and no provider is set: kubeq does not import the API itself (its
    modules cost a worker the better part of a megabyte), except when the environment names
    a provider for OpenTelemetry to build."""
    module = sys.modules.get("opentelemetry.trace")
    if module is None and _ENV_PROVIDER:
        import opentelemetry.trace as module  # noqa: PLC0415 - see above

    return module


def _propagate() -> ModuleType:
    """OpenTelemetry's propagation API, imported when a trace context is to be carried."""
    from opentelemetry import propagate  # noqa: PLC0415 - only with a span or a provider

    return propagate


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
    trace = _trace()
    if trace is None or not trace.get_current_span().get_span_context().is_valid:
        return None
    carrier: dict[str, str] = {}
    _propagate().inject(carrier)
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


def _sdk_configured(trace: ModuleType) -> bool:
    """Whether the application has set a tracer provider. OpenTelemetry's own lookup reads
    the environment on every call until one is set (a few % of a no-op job's time); the
    module's global says the same for the cost of one attribute read (an OpenTelemetry
    without that global gets the public lookup)."""
    provider = getattr(trace, "_TRACER_PROVIDER", _UNKNOWN)
    if provider is None and not _ENV_PROVIDER:
        return False
    placeholders = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    return not isinstance(trace.get_tracer_provider(), placeholders)


def active() -> bool:
    """Whether an attempt started now gets a consumer span (``traced``)."""
    trace = _trace()
    return trace is not None and _sdk_configured(trace)


def traced(d: Attempt, attempt: Awaitable[Settlement]) -> Awaitable[Settlement]:
    """One attempt of ``d`` to await, inside a consumer span when OTel is imported and an
    SDK is configured; else the attempt itself (no span objects, and no coroutine more for
    each job's task to step through, on the hot path)."""
    trace = _trace()
    if trace is None or not _sdk_configured(trace):
        return attempt
    return _traced(d, attempt, trace)


async def _traced(d: Attempt, attempt: Awaitable[Settlement], trace: ModuleType) -> Settlement:
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
        context=_propagate().extract(_carrier(job.payload)),
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
