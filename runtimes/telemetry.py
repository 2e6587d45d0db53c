"""Phases of a sandbox's life: one OpenTelemetry span each, and a duration for observers.

The sandbox layer must know neither gRPC nor Prometheus, yet an operator wants
every phase (acquire or launch, delivery, run, collection, teardown) in the
caller's trace and in a histogram. `phase()` is the one instrument for both:
it starts a span with the OpenTelemetry *API* (tracer "codebeaker.runtimes";
a no-op until the server installs an SDK) and, when the phase ends, hands its
name, duration, attributes and error to the observers the server registered
(`add_observer`) and to the execution's ledger of durations (`durations()`).

A phase span is a child of the current span (`background_phase`: the root
of a new trace) but never becomes current itself:
the sandbox is an async generator, and a span made current inside it would
leak into its consumer between two events. Only service failures mark a span
ERROR: a caller's mistake, a full server, a cancelled call or a program that
failed is an answer, not a fault.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanContext, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from codebeaker.runtimes.errors import CapacityExhausted, InvalidRequest
from codebeaker.runtimes.model import Finished, Job, Limits, Outcome

PREFIX = "codebeaker."
"""Every attribute a phase sets is named `codebeaker.<key>` on its span."""
TRACER_NAME = "codebeaker.runtimes"

_tracer = trace.get_tracer(TRACER_NAME)
_NOT_FAILURES = (InvalidRequest, CapacityExhausted)
_current: ContextVar[Phase | None] = ContextVar("codebeaker_phase", default=None)
_ledger: ContextVar[dict[str, float] | None] = ContextVar("codebeaker_ledger", default=None)


@dataclass(frozen=True)
class PhaseRecord:
    """A phase that ended: what observers are told."""

    name: str
    seconds: float
    attributes: Mapping[str, AttributeValue]
    error: BaseException | None


class PhaseObserver(Protocol):
    """Receives every phase that ends (the server feeds its histograms from these)."""

    def phase_ended(self, record: PhaseRecord) -> None: ...


_observers: list[PhaseObserver] = []


def add_observer(observer: PhaseObserver) -> None:
    _observers.append(observer)


def remove_observer(observer: PhaseObserver) -> None:
    if observer in _observers:
        _observers.remove(observer)


class Phase:
    """An open phase; `set()` adds what is known only as it ends (a verdict, a pool hit)."""

    __slots__ = ("_span", "attributes")

    def __init__(self, span: Span, attributes: dict[str, AttributeValue]) -> None:
        self._span = span
        self.attributes = attributes

    def set(self, **attributes: AttributeValue) -> None:
        self.attributes.update(attributes)
        self._span.set_attributes({PREFIX + key: value for key, value in attributes.items()})

    @property
    def origin(self) -> SpanContext:
        """This phase's span, for a later phase (in another trace) to link to."""
        return self._span.get_span_context()

    def link(self, origin: SpanContext) -> None:
        """Point at a phase of another trace this one depends on (e.g. its container's launch)."""
        if origin.is_valid:
            self._span.add_link(origin)


def phase(name: str, **attributes: AttributeValue) -> contextlib.AbstractContextManager[Phase]:
    """Time and trace one phase, as a child of the current span."""
    return _phase(name, False, attributes)


def background_phase(
    name: str, **attributes: AttributeValue
) -> contextlib.AbstractContextManager[Phase]:
    """A phase that belongs to no request (a warm pool filling itself): a trace of its own.

    The request that later uses its result links to it (`Phase.link`): its
    user, not whichever request happened to trigger the launch.
    """
    return _phase(name, True, attributes)


@contextlib.contextmanager
def _phase(name: str, detached: bool, attributes: Mapping[str, AttributeValue]) -> Iterator[Phase]:
    prefixed = {PREFIX + key: value for key, value in attributes.items()}
    parent = otel_context.Context() if detached else None  # an empty context: a new trace
    span = _tracer.start_span(name, context=parent, attributes=prefixed)
    handle = Phase(span, dict(attributes))
    outer = _current.get()
    _current.set(handle)
    error: BaseException | None = None
    started = time.perf_counter()
    try:
        yield handle
    except BaseException as caught:
        error = caught
        raise
    finally:
        seconds = time.perf_counter() - started
        # Restored by value, not by token: an abandoned generator may be
        # finalised in another context, where a token would not apply.
        _current.set(outer)
        if isinstance(error, Exception) and not isinstance(error, _NOT_FAILURES):
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
        span.end()
        ledger = None if detached else _ledger.get()
        if ledger is not None:
            ledger[name] = ledger.get(name, 0.0) + seconds
        record = PhaseRecord(name, seconds, handle.attributes, error)
        for observer in _observers:
            observer.phase_ended(record)


def annotate(**attributes: AttributeValue) -> None:
    """Add attributes to the innermost open phase of this context, if any."""
    current = _current.get()
    if current is not None:
        current.set(**attributes)


@contextlib.contextmanager
def durations() -> Iterator[Mapping[str, float]]:
    """Collect the seconds of every (non-detached) phase run in this context, by name."""
    outer = _ledger.get()
    ledger: dict[str, float] = {}
    _ledger.set(ledger)
    try:
        yield ledger
    finally:
        _ledger.set(outer)


def job_attributes(job: Job) -> dict[str, AttributeValue]:
    return {
        "execution_id": job.execution_id,
        "language": job.language.id,
        "version": job.language.version,
    }


def limit_attributes(limits: Limits) -> dict[str, AttributeValue]:
    return {
        "limits.wall_time": limits.wall_time,
        "limits.cpu_time": limits.cpu_time,
        "limits.memory_bytes": limits.memory_bytes,
        "limits.max_processes": limits.max_processes,
        "limits.max_output_bytes": limits.max_output_bytes,
    }


def finished_attributes(finished: Finished) -> dict[str, AttributeValue]:
    """The run span's result: the summary, the compile's, and the test cases' tally."""
    attributes = outcome_attributes(finished.outcome)
    if finished.compile is not None:
        compiled = finished.compile.outcome
        attributes["compile.status"] = compiled.verdict.value
        attributes["compile.wall_time"] = compiled.wall_time
    if finished.test_cases:
        attributes["test_cases"] = len(finished.test_cases)
        attributes["test_cases.passed"] = finished.test_cases_passed
    return attributes


def outcome_attributes(outcome: Outcome) -> dict[str, AttributeValue]:
    return {
        "status": outcome.verdict.value,
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "wall_time": outcome.wall_time,
        "cpu_time": outcome.cpu_time,
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "stdout_truncated": outcome.stdout_truncated,
        "stderr_truncated": outcome.stderr_truncated,
    }
