"""Optional OpenTelemetry spans: one PRODUCER span per enqueue, one CONSUMER span per attempt.

Needs only ``opentelemetry-api`` (the ``otel`` extra); without an SDK configured by the
application every span is a no-op. :func:`install_tracing` does two things:

- at enqueue, a ``send {queue}`` span is started as a child of whatever span is current (the
  web request that enqueued, say) and its context is injected into the job's ``meta["otel"]``
  (W3C ``traceparent``), so it travels with the job through any backend;
- in the worker, each attempt gets a ``process {queue}`` span whose parent is that context,
  from ``job.started`` to the attempt's outcome event, with the job id, task and attempt as
  attributes and an ERROR status for a failed attempt.

The consumer span is recorded from events; it is not made *current* inside the job function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from taskward.observe.events import OUTCOME_EVENTS, Event, EventBus

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

__all__ = ["META_KEY", "Tracing", "install_tracing"]

META_KEY = "otel"
"""The key of ``job.meta`` that carries the producer's trace context."""
MAX_OPEN_SPANS = 10_000
"""Attempts whose outcome this process never sees (rescued elsewhere) must not pile up."""
FAILED_STATES = frozenset({"retryable", "failed", "discarded"})


class Traced(Protocol):
    """What :func:`install_tracing` needs: a TaskManager fits."""

    @property
    def events(self) -> EventBus:
        """The bus the manager and its workers emit on."""
        ...

    @property
    def meta_providers(self) -> list[Callable[[str, str], Mapping[str, Any]]]:
        """Called at each enqueue; their dicts join the job's meta."""
        ...


def _ns(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000_000)


@dataclass(slots=True)
class Tracing:
    """Creates the spans; installed by :func:`install_tracing`."""

    tracer: Tracer
    open_spans: dict[tuple[int, int], Span]

    def inject(self, task: str, queue: str) -> dict[str, Any]:
        """Start and end the PRODUCER span; return the meta entry carrying its context."""
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        attributes = {
            "messaging.system": "taskward",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": queue,
            "taskward.task": task,
        }
        carrier: dict[str, str] = {}
        with self.tracer.start_as_current_span(
            f"send {queue}", kind=SpanKind.PRODUCER, attributes=attributes
        ):
            propagate.inject(carrier)
        return {META_KEY: carrier} if carrier else {}

    def started(self, event: Event) -> None:
        """Open the CONSUMER span of one attempt, child of the enqueue's context."""
        from opentelemetry import propagate
        from opentelemetry.trace import SpanKind

        job = event.job
        if job is None:
            return
        carrier = job.meta.get(META_KEY)
        parent = propagate.extract(carrier) if isinstance(carrier, dict) else None
        span = self.tracer.start_span(
            f"process {job.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            start_time=_ns(event.at),
            attributes={
                "messaging.system": "taskward",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": job.queue,
                "messaging.message.id": str(job.id),
                "taskward.task": job.task,
                "taskward.attempt": job.attempt,
            },
        )
        if len(self.open_spans) >= MAX_OPEN_SPANS:
            oldest = next(iter(self.open_spans))
            self.open_spans.pop(oldest).end()
        self.open_spans[(job.id, job.attempt)] = span

    def ended(self, event: Event) -> None:
        """Close the attempt's span with its outcome."""
        from opentelemetry.trace import Status, StatusCode

        job = event.job
        span = self.open_spans.pop((job.id, job.attempt), None) if job is not None else None
        if span is None:
            return
        state = str(event.data.get("state"))
        span.set_attribute("taskward.state", state)
        if state in FAILED_STATES:
            span.set_status(Status(StatusCode.ERROR, str(event.data.get("error") or state)))
        span.end(end_time=_ns(event.at))


def install_tracing(manager: Traced, tracer_provider: TracerProvider | None = None) -> Tracing:
    """Trace ``manager``'s enqueues and attempts; raises ImportError without opentelemetry-api.

    ``tracer_provider`` defaults to the global one (set by the application's SDK setup).
    """
    from opentelemetry import trace

    tracer = trace.get_tracer("taskward", tracer_provider=tracer_provider)
    tracing = Tracing(tracer=tracer, open_spans={})
    manager.meta_providers.append(tracing.inject)
    manager.events.on("job.started", tracing.started)
    for name in OUTCOME_EVENTS.values():
        manager.events.on(name, tracing.ended)
    return tracing
