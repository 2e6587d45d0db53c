"""An OpenTelemetry SDK for the tests: one in-memory exporter, installed once per process.

OpenTelemetry's global tracer provider can be set only once, so the first test
that asks for spans installs an SDK provider exporting to memory, and every
later test shares it (clearing it first). Tests that never ask keep the API's
no-op, as a server without an exporter does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def installed_exporter() -> InMemorySpanExporter:
    global _exporter
    if _exporter is None:
        provider = TracerProvider(resource=Resource.create({"service.name": "codebeaker-tests"}))
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:
            raise RuntimeError("another tracer provider was installed first")
        _exporter = exporter
    return _exporter


def wait_for_spans(
    exporter: InMemorySpanExporter,
    done: Callable[[Sequence[ReadableSpan]], bool],
    within: float = 20.0,
) -> Sequence[ReadableSpan]:
    """Poll the exporter until `done` holds (spans ending after the call returned)."""
    deadline = time.monotonic() + within
    finished = exporter.get_finished_spans()
    while not done(finished) and time.monotonic() < deadline:
        time.sleep(0.02)
        finished = exporter.get_finished_spans()
    return finished


def in_trace(spans: Sequence[ReadableSpan], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


def tree(spans: Sequence[ReadableSpan]) -> str:
    """The spans of one trace as an indented tree with durations (for reports)."""
    by_parent: dict[int | None, list[ReadableSpan]] = {}
    ids = {s.context.span_id for s in spans if s.context is not None}
    for span in spans:
        parent = span.parent.span_id if span.parent and span.parent.span_id in ids else None
        by_parent.setdefault(parent, []).append(span)
    lines: list[str] = []

    def walk(parent: int | None, depth: int) -> None:
        for span in sorted(by_parent.get(parent, []), key=lambda s: s.start_time or 0):
            ms = ((span.end_time or 0) - (span.start_time or 0)) / 1e6
            keys = ("codebeaker.pool", "codebeaker.status", "codebeaker.exit_code")
            notes = " ".join(
                f"{k.split('.')[-1]}={span.attributes[k]!s}"
                for k in keys
                if span.attributes and k in span.attributes
            )
            lines.append(f"{'  ' * depth}{span.name}  {ms:.2f} ms  {notes}".rstrip())
            if span.context is not None:
                walk(span.context.span_id, depth + 1)

    walk(None, 0)
    return "\n".join(lines)
