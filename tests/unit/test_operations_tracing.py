"""One trace per job: the span that runs a queued job continues the submit's trace.

Through the real server over the fake sandbox, with the in-memory exporter of
tests/spans.py. The submit's server span is the run span's parent (the store
keeps its W3C context with the record) and the run span links to it too, so a
trace view shows the run under its submit even when the run comes much later,
on another server, or after a restart. The execution's own spans (admission,
the sandbox's phases) are under the run span.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.v1 import execution_pb2 as pb
from tests.spans import in_trace, wait_for_spans
from tests.unit.fake_sandbox import FakeSandbox
from tests.unit.operations_helpers import metadata, queue_server

RUN = "codebeaker.operation.run"
SUBMIT = "codebeaker.v1.ExecutionService/SubmitExecution"


def named(spans: Sequence[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_the_run_span_is_a_child_of_the_submit_span_and_links_to_it(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with queue_server(tmp_path) as q:
        submitted = await q.submit("out traced", request_id="t-1")
        done = await q.wait(submitted.name)
        assert metadata(done).state == pb.EXECUTION_STATE_SUCCEEDED
        await q.submit("out traced", request_id="t-1")  # a retried submit: no second run
        finished = wait_for_spans(spans, lambda found: len(named(found, SUBMIT)) == 2)
    first_submit, retried_submit = named(finished, SUBMIT)
    (run,) = named(finished, RUN)
    assert first_submit.kind is SpanKind.SERVER and first_submit.context is not None
    assert run.context is not None and run.parent is not None
    assert run.kind is SpanKind.CONSUMER
    assert run.context.trace_id == first_submit.context.trace_id
    assert run.parent.span_id == first_submit.context.span_id
    (link,) = run.links
    assert (link.context.trace_id, link.context.span_id) == (
        first_submit.context.trace_id, first_submit.context.span_id,
    )  # fmt: skip
    assert run.attributes is not None
    assert run.attributes["codebeaker.operation"] == submitted.name
    assert run.attributes["codebeaker.attempt"] == 1
    assert run.start_time is not None and first_submit.start_time is not None
    assert run.start_time >= first_submit.start_time
    # The execution's spans are under the run span, in the submit's trace.
    inside = [s for s in in_trace(finished, run.context.trace_id) if s not in (run, first_submit)]
    assert "admission" in {s.name for s in inside}
    assert all(s.parent is not None for s in inside)
    assert retried_submit.context is not None
    assert retried_submit.context.trace_id != run.context.trace_id  # its own call, no run


async def test_a_job_run_again_after_a_restart_stays_in_the_submitters_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    sandbox = FakeSandbox()
    async with queue_server(tmp_path, sandbox, queue_workers=1) as q:
        submitted = await q.submit("block")
        await sandbox.blocked.wait()
        await q.server.app.queue.pool.stop(0.2)  # handed back, as on SIGTERM
    again = FakeSandbox()
    again.release()
    async with queue_server(tmp_path, again) as q:
        assert metadata(await q.wait(submitted.name)).state == pb.EXECUTION_STATE_SUCCEEDED
        finished = wait_for_spans(spans, lambda found: len(named(found, RUN)) >= 2)
    (submit,) = named(finished, SUBMIT)
    first, second = sorted(named(finished, RUN), key=lambda span: span.start_time or 0)
    assert submit.context is not None
    for run in (first, second):
        assert run.context is not None and run.parent is not None
        assert run.context.trace_id == submit.context.trace_id
        assert run.parent.span_id == submit.context.span_id
    assert second.attributes is not None and second.attributes["codebeaker.attempt"] == 1
