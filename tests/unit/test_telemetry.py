"""`phase()`: one span and one observed duration per phase, failures only for service faults."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from codebeaker.runtimes import telemetry
from codebeaker.runtimes.errors import CapacityExhausted, InvalidRequest, SandboxFailure
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    Finished,
    Outcome,
    Stage,
    StageKind,
    StageResult,
    Verdict,
)
from codebeaker.runtimes.telemetry import (
    PhaseRecord,
    annotate,
    background_phase,
    durations,
    phase,
)


class Recorder:
    def __init__(self) -> None:
        self.records: list[PhaseRecord] = []

    def phase_ended(self, record: PhaseRecord) -> None:
        self.records.append(record)


@pytest.fixture
def observer() -> Iterator[Recorder]:
    recorder = Recorder()
    telemetry.add_observer(recorder)
    yield recorder
    telemetry.remove_observer(recorder)


def test_a_phase_is_a_child_span_with_prefixed_attributes(
    spans: InMemorySpanExporter, observer: Recorder
) -> None:
    tracer = trace.get_tracer("test")
    with (
        tracer.start_as_current_span("request") as request,
        phase("run", language="python", exit_code=0) as running,
    ):
        # Never current: an async generator would leak it to its consumer.
        assert trace.get_current_span() is request
        running.set(status="ok")
    (run,) = [s for s in spans.get_finished_spans() if s.name == "run"]
    assert run.parent is not None
    assert run.parent.span_id == request.get_span_context().span_id
    assert run.attributes == {
        "codebeaker.language": "python",
        "codebeaker.exit_code": 0,
        "codebeaker.status": "ok",
    }
    assert run.instrumentation_scope is not None
    assert run.instrumentation_scope.name == "codebeaker.runtimes"
    (record,) = observer.records
    assert record.name == "run"
    assert record.attributes == {"language": "python", "exit_code": 0, "status": "ok"}
    assert record.error is None
    assert record.seconds >= 0


def test_only_service_failures_mark_a_phase_as_error(
    spans: InMemorySpanExporter, observer: Recorder
) -> None:
    for error in (
        SandboxFailure("supervisor broke"),
        CapacityExhausted("busy", retry_after=1),
        InvalidRequest("spec.language", "unknown"),
        asyncio.CancelledError(),
    ):
        with pytest.raises(type(error)), phase(type(error).__name__):
            raise error
    status = {s.name: s.status.status_code for s in spans.get_finished_spans()}
    assert status == {
        "SandboxFailure": StatusCode.ERROR,
        "CapacityExhausted": StatusCode.UNSET,
        "InvalidRequest": StatusCode.UNSET,
        "CancelledError": StatusCode.UNSET,
    }
    assert [type(r.error).__name__ for r in observer.records] == list(status)


def test_a_background_phase_is_a_new_trace_that_users_link_to(
    spans: InMemorySpanExporter,
) -> None:
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("request"):
        with background_phase("launch", pooled=True) as launch:
            origin = launch.origin
        with phase("acquire") as acquire:
            acquire.link(origin)
    finished = {s.name: s for s in spans.get_finished_spans()}
    assert finished["launch"].parent is None
    assert finished["launch"].context is not None
    assert finished["request"].context is not None
    assert finished["launch"].context.trace_id != finished["request"].context.trace_id
    assert [link.context for link in finished["acquire"].links] == [origin]


def test_annotate_reaches_the_innermost_open_phase(spans: InMemorySpanExporter) -> None:
    annotate(pool="nowhere")  # no phase open: ignored
    with phase("acquire"):
        annotate(pool="hit")
    (acquire,) = spans.get_finished_spans()
    assert acquire.attributes == {"codebeaker.pool": "hit"}


def test_durations_collect_the_phases_of_this_context_only() -> None:
    with durations() as seen:
        with phase("admission"):
            pass
        with phase("run"):
            pass
        with background_phase("launch"):
            pass
    with phase("later"):
        pass
    assert set(seen) == {"admission", "run"}
    assert all(seconds >= 0 for seconds in seen.values())


def test_without_an_sdk_phases_are_no_ops_that_still_report_durations(
    observer: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a server without an exporter runs: the API's no-op tracer."""
    monkeypatch.setattr(telemetry, "_tracer", trace.NoOpTracerProvider().get_tracer("x"))
    with phase("run") as running:
        running.set(status="ok")
        assert not running.origin.is_valid
    assert [r.name for r in observer.records] == ["run"]


def test_run_span_attributes_sum_up_compile_and_test_cases() -> None:
    ok = Outcome(Verdict.OK, 0, 0, 0.25, 0.2, 1 << 20, False, False)
    cases = tuple(StageResult(Stage(StageKind.RUN, n), ok) for n in (1, 2, 3))
    finished = Finished(ok, StageResult(COMPILE_STAGE, ok), (), cases, 2)
    attributes = telemetry.finished_attributes(finished)
    assert attributes["status"] == "ok"
    assert attributes["compile.status"] == "ok" and attributes["compile.wall_time"] == 0.25
    assert (attributes["test_cases"], attributes["test_cases.passed"]) == (3, 2)
    assert "compile.status" not in telemetry.finished_attributes(Finished(ok))
