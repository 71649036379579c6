"""OpenTelemetry spans with the SDK's in-memory exporter: enqueue → job, one trace."""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from taskward import TaskManager
from taskward.observe.otel import install_tracing


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_job_spans_continue_the_enqueuing_trace(tw: TaskManager) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    install_tracing(tw, provider)
    calls = {"n": 0}

    @tw.task(queue="emails", max_attempts=2, backoff=0)
    async def send(to: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise ConnectionError("smtp down")

    with provider.get_tracer("app").start_as_current_span("POST /signup") as request:
        job = await send.enqueue("ada@example.com")
    stored = await tw.get_task_status(job.id)
    assert stored.meta["otel"]["traceparent"].startswith("00-")  # survives the backend
    await tw.drain(with_scheduled=True, timeout=10)

    spans = exporter.get_finished_spans()
    (producer,) = by_name(spans, "send emails")
    attempts = sorted(by_name(spans, "process emails"), key=lambda s: s.start_time or 0)
    trace_id = request.get_span_context().trace_id
    assert producer.kind is SpanKind.PRODUCER
    assert producer.parent is not None
    assert producer.parent.span_id == request.get_span_context().span_id
    assert [s.kind for s in attempts] == [SpanKind.CONSUMER, SpanKind.CONSUMER]
    for span in attempts:
        assert span.context is not None
        assert span.context.trace_id == trace_id
        assert span.parent is not None
        assert producer.context is not None
        assert span.parent.span_id == producer.context.span_id
        assert span.attributes is not None
        assert span.attributes["messaging.message.id"] == str(job.id)
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert "smtp down" in (attempts[0].status.description or "")
    assert attempts[1].status.status_code is StatusCode.UNSET
    assert [s.attributes["taskward.attempt"] for s in attempts if s.attributes] == [1, 2]
