"""OpenTelemetry (kubeq[otel]): the caller's trace travels in the job and the worker opens a
consumer span per attempt. Spans are read from the SDK's in-memory exporter; the worker is a
real one (kubeq.testing.drain) on the test Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import kubeq
from kubeq import serialization
from kubeq.testing import drain

EXPORTER = InMemorySpanExporter()
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
attempts: dict[str, int] = {}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    trace.set_tracer_provider(_PROVIDER)  # once per process; later calls only warn
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


def make_app(url: str) -> kubeq.App:
    app = kubeq.App(url)

    @app.task(name="charge", queue="payments", max_attempts=2, backoff_min=0, backoff_max=0)
    def charge(order: int) -> str:
        attempts[str(order)] = attempts.get(str(order), 0) + 1
        if attempts[str(order)] == 1 and order < 0:
            raise ConnectionError("card network down")
        inner = trace.get_current_span().get_span_context()
        return f"{inner.trace_id:032x}"

    return app


def consumer_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is trace.SpanKind.CONSUMER]


def test_the_callers_trace_continues_in_the_worker(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    app = make_app(redis_url)
    tracer = trace.get_tracer("shop")
    with tracer.start_as_current_span("POST /orders") as request:
        job = app.tasks["charge"].delay(7)
    caller = request.get_span_context()
    payload = serialization.loads(job.info().payload)
    assert payload["trace"]["traceparent"] == (
        f"00-{caller.trace_id:032x}-{caller.span_id:016x}-{caller.trace_flags:02x}"
    )
    assert drain(app).finished == 1
    (span,) = consumer_spans(spans)
    assert span.name == "process payments"
    assert span.context.trace_id == caller.trace_id
    assert span.parent is not None and span.parent.span_id == caller.span_id
    assert dict(span.attributes or {}) == {
        "messaging.system": "kubeq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "payments",
        "messaging.message.id": job.id,
        "kubeq.job.attempt": 1,
        "kubeq.task": "charge",
        "kubeq.job.outcome": "finished",
    }
    # the task's own code runs inside the consumer span (its spans would be children)
    assert job.result(timeout=1) == f"{caller.trace_id:032x}"
    app.close()


def test_every_delay_carries_its_callers_trace(redis_url: str, spans: InMemorySpanExporter) -> None:
    """The second delay() of a task takes the short path (kubeq.client.short): its payload
    carries the trace of the span around it, as the first's does."""
    app = make_app(redis_url)
    tracer = trace.get_tracer("shop")
    sent = []
    for order in (11, 12, 13):
        with tracer.start_as_current_span(f"POST /orders/{order}") as request:
            sent.append((app.tasks["charge"].delay(order), request.get_span_context()))
    for job, caller in sent:
        payload = serialization.loads(job.info().payload)
        assert payload["trace"]["traceparent"] == (
            f"00-{caller.trace_id:032x}-{caller.span_id:016x}-{caller.trace_flags:02x}"
        )
    assert "trace" not in serialization.loads(app.tasks["charge"].delay(14).info().payload)
    app.close()


def test_one_span_per_attempt_with_its_outcome(redis_url: str, spans: InMemorySpanExporter) -> None:
    app = make_app(redis_url)
    with trace.get_tracer("shop").start_as_current_span("checkout"):
        job = app.tasks["charge"].delay(-1)
    drain(app)
    first, second = sorted(consumer_spans(spans), key=lambda s: s.start_time or 0)
    assert [s.attributes["kubeq.job.attempt"] for s in (first, second)] == [1, 2]  # type: ignore[index]
    assert first.attributes["kubeq.job.outcome"] == "retry"  # type: ignore[index]
    assert first.status.status_code is trace.StatusCode.ERROR
    assert "ConnectionError: card network down" in (first.status.description or "")
    assert second.attributes["kubeq.job.outcome"] == "finished"  # type: ignore[index]
    assert first.context.trace_id == second.context.trace_id  # both continue the caller's trace
    assert job.info().attempts == 2
    app.close()


def test_no_active_span_means_no_trace_in_the_payload(
    redis_url: str, spans: InMemorySpanExporter
) -> None:
    app = make_app(redis_url)
    job = app.tasks["charge"].delay(1)
    assert "trace" not in serialization.loads(job.info().payload)
    drain(app)
    (span,) = consumer_spans(spans)  # the worker still traces the attempt, as a new trace
    assert span.parent is None
    app.close()


def python(script: str, **env: str) -> str:
    """What a fresh interpreter running ``script`` printed (``env`` added to this one's)."""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={**os.environ, **env},
    )
    return out.stdout


def test_without_opentelemetry_payloads_carry_nothing_extra() -> None:
    script = (
        "import sys; sys.modules['opentelemetry'] = None\n"  # as if kubeq[otel] were absent
        "import kubeq, kubeq.tracing\n"
        "from kubeq.client.enqueue import plan_enqueue\n"
        "assert not kubeq.tracing.ENABLED\n"
        "plan = plan_enqueue([kubeq.Call('t', (1,))])\n"
        "print(plan.payloads[0].decode())\n"
    )
    assert python(script).strip() == '{"task":"t","args":[1]}'  # (empty kwargs left out)


def test_a_process_that_does_not_trace_never_loads_the_trace_api() -> None:
    """kubeq uses OpenTelemetry's trace API once the application has imported it: a client
    and a worker that do not trace (the SDK hidden, as where it is not installed: redis-py 8
    imports the API's trace module through the SDK) enqueue and run without loading it."""
    script = (
        "import sys; sys.modules['opentelemetry.sdk'] = None\n"
        "import asyncio, kubeq, kubeq.tracing, kubeq.worker.loop\n"
        "from kubeq.client.enqueue import plan_enqueue\n"
        "from kubeq.outcomes import Outcome, Settlement\n"
        "assert kubeq.tracing.ENABLED\n"
        "plan = plan_enqueue([kubeq.Call('t', (1,))])\n"
        "async def attempt(): return Settlement(Outcome.FINISHED)\n"
        "run = attempt()\n"
        "assert kubeq.tracing.traced(None, run) is run\n"
        "asyncio.run(run)\n"
        "print(plan.payloads[0].decode())\n"
        "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.trace', "
        "'opentelemetry.propagate', 'opentelemetry.baggage'))))\n"
    )
    printed = python(script)
    assert printed.split("\n")[:2] == ['{"task":"t","args":[1]}', "[]"], printed


def test_a_provider_named_by_the_environment_traces_without_an_import_by_the_app() -> None:
    """OTEL_PYTHON_TRACER_PROVIDER names a provider OpenTelemetry builds on first use: the
    worker traces its attempts though the application never imported the API."""
    script = (
        "import asyncio, kubeq.tracing\n"
        "from kubeq.outcomes import Outcome, Settlement\n"
        "async def attempt(): return Settlement(Outcome.FINISHED)\n"
        "run = attempt()\n"
        "wrapped = kubeq.tracing.traced(None, run)\n"
        "print(wrapped is run)\n"
        "wrapped.close(); run.close()\n"
    )
    assert python(script, OTEL_PYTHON_TRACER_PROVIDER="sdk_tracer_provider").strip() == "False"
