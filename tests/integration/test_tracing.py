"""One trace from the SDK's client span through the server span to every sandbox phase, on Docker.

The server runs in-process (so its spans reach this test's in-memory
exporter) over the real Docker backend with a warm pool. A request with the
pool's container limits takes a started container (`acquire`); one with
other memory gets a container created and started for it (`launch`). It is
called over
gRPC by the blocking SDK, by the asyncio SDK, and by a plain generated stub
that sends its own `traceparent`, as OpenTelemetry's gRPC instrumentation
would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence

import grpc
import pytest
from opentelemetry import propagate, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from codebeaker.client import AsyncClient, Client, ExecutionStatus, Limits, Output
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.inprocess import InProcessServer, in_process_server
from tests.spans import in_trace, wait_for_spans

pytestmark = pytest.mark.docker
PHASES_AFTER_START = ("deliver", "run", "collect", "teardown")
FAILING = "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(3)\n"
PATHS = {
    "acquire": Limits(wall_time=7, cpu_time=6, memory_bytes=256 << 20),  # the pool's
    "launch": Limits(wall_time=7, cpu_time=6, memory_bytes=192 << 20),  # its own container
}


@pytest.fixture(scope="module")
def server() -> Iterator[InProcessServer]:
    # The paths of one container per run: a warm pool's container, or a launch.
    with in_process_server(isolation="container", pool_size=2, default_memory=256 << 20) as running:
        yield running


@pytest.fixture(params=list(PATHS))
def path(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def one_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    """The trace's spans, once teardown (which ends after the call returns) is in."""
    finished = wait_for_spans(
        exporter, lambda found: any(s.name == "teardown" for s in in_trace(found, trace_id))
    )
    return in_trace(finished, trace_id)


def named(
    spans: Sequence[ReadableSpan], name: str, kind: SpanKind = SpanKind.INTERNAL
) -> ReadableSpan:
    matches = [s for s in spans if s.name == name and s.kind is kind]
    assert len(matches) == 1, f"{name}: {[s.name for s in spans]}"
    return matches[0]


def client_span(spans: Sequence[ReadableSpan], method: str) -> ReadableSpan:
    return named(spans, f"codebeaker.v1.ExecutionService/{method}", SpanKind.CLIENT)


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def check_trace(spans: Sequence[ReadableSpan], method: str, path: str, execution_id: str) -> None:
    client = client_span(spans, method)
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 1
    rpc = servers[0]
    assert rpc.name == f"codebeaker.v1.ExecutionService/{method}"
    assert parent_id(rpc) == span_id(client)
    assert rpc.attributes is not None
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    assert rpc.attributes["codebeaker.execution_id"] == execution_id
    for phase in ("admission", path, *PHASES_AFTER_START):
        found = named(spans, phase)
        assert parent_id(found) == span_id(rpc), phase
        assert found.instrumentation_scope is not None
        scope = found.instrumentation_scope.name
        assert scope == ("codebeaker.runtimes"), f"{phase} from {scope}"
    # A program that failed is data, not a failed span.
    for span in spans:
        assert span.status.status_code is not StatusCode.ERROR, span.name

    run = named(spans, "run")
    assert run.attributes is not None
    assert run.attributes["codebeaker.execution_id"] == execution_id
    assert run.attributes["codebeaker.language"] == "python"
    assert run.attributes["codebeaker.version"]
    assert run.attributes["codebeaker.status"] == "runtime_error"
    assert run.attributes["codebeaker.exit_code"] == 3
    assert run.attributes["codebeaker.limits.wall_time"] == 7.0
    assert run.attributes["codebeaker.limits.cpu_time"] == 6.0
    assert run.attributes["codebeaker.limits.memory_bytes"] == PATHS[path].memory_bytes
    assert "codebeaker.limits.max_output_bytes" in run.attributes
    if path == "acquire":
        acquire = named(spans, "acquire")
        assert acquire.attributes is not None
        assert acquire.attributes["codebeaker.pool"] in ("hit", "miss")
    else:
        launch = named(spans, "launch")
        assert launch.attributes is not None
        assert launch.attributes["codebeaker.language"] == "python"
        assert launch.attributes["codebeaker.pooled"] is False
        assert launch.attributes["codebeaker.runtime"] == "runc"
    # Program bytes never become span data.
    for span in spans:
        for value in (span.attributes or {}).values():
            assert "to stdout" not in str(value) and "to stderr" not in str(value)


def test_execute_is_one_trace_from_the_client_span_to_every_phase(
    server: InProcessServer, path: str, spans: InMemorySpanExporter
) -> None:
    with Client(server.address, timeout=60) as client:
        result = client.execute("python", FAILING, limits=PATHS[path])
    assert result.status is ExecutionStatus.RUNTIME_ERROR
    call = client_span(spans.get_finished_spans(), "Execute")
    check_trace(one_trace(spans, trace_id(call)), "Execute", path, result.execution_id)


def test_execute_stream_is_one_trace_from_the_client_span_to_every_phase(
    server: InProcessServer, path: str, spans: InMemorySpanExporter
) -> None:
    with (
        Client(server.address, timeout=60) as client,
        client.stream("python", FAILING, limits=PATHS[path]) as stream,
    ):
        events = list(stream)
    assert any(isinstance(event, Output) for event in events)
    assert stream.result is not None
    assert stream.result.status is ExecutionStatus.RUNTIME_ERROR
    call = client_span(spans.get_finished_spans(), "ExecuteStream")
    trace_spans = one_trace(spans, trace_id(call))
    check_trace(trace_spans, "ExecuteStream", path, stream.result.execution_id)


def test_the_async_client_continues_the_callers_trace(
    server: InProcessServer, path: str, spans: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("test")

    async def call() -> str:
        async with AsyncClient(server.address, timeout=60) as client:
            result = await client.execute("python", FAILING, limits=PATHS[path])
        return result.execution_id

    with tracer.start_as_current_span("caller") as caller:
        execution_id = asyncio.run(call())
    trace_spans = one_trace(spans, caller.get_span_context().trace_id)
    assert parent_id(client_span(trace_spans, "Execute")) == caller.get_span_context().span_id
    check_trace(trace_spans, "Execute", path, execution_id)


def test_a_plain_stub_with_its_own_trace_context_joins(
    server: InProcessServer, path: str, spans: InMemorySpanExporter
) -> None:
    """What a caller with OpenTelemetry's gRPC instrumentation sends: W3C `traceparent`."""
    tracer = trace.get_tracer("test")
    with tracer.start_as_current_span("foreign client", kind=SpanKind.CLIENT) as caller:
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.ExecutionServiceStub(channel)
            spec = pb.ExecutionSpec(language="py", source=b"print('hi')")
            response = stub.Execute(
                pb.ExecuteRequest(spec=spec), timeout=60, metadata=tuple(carrier.items())
            )
    assert response.result.stdout == b"hi\n"
    trace_spans = one_trace(spans, caller.get_span_context().trace_id)
    rpc = next(s for s in trace_spans if s.kind is SpanKind.SERVER)
    assert parent_id(rpc) == caller.get_span_context().span_id
    assert {s.name for s in trace_spans} >= {"admission", "deliver", "run", "collect", "teardown"}


def test_a_pool_miss_links_to_the_launch_it_waited_for(spans: InMemorySpanExporter) -> None:
    """A pool's launches are traces of their own; the request that uses one links to it."""
    with (
        in_process_server(isolation="container", pool_size=0) as server,
        Client(server.address, timeout=60) as client,
    ):
        result = client.execute("javascript", "console.log(1)")
        request = one_trace(spans, trace_id(client_span(spans.get_finished_spans(), "Execute")))
    assert result.stdout == b"1\n"
    acquire = named(request, "acquire")
    assert acquire.attributes is not None
    assert acquire.attributes["codebeaker.pool"] == "miss"
    assert len(acquire.links) == 1
    launch_id = acquire.links[0].context.span_id
    launch = next(
        s for s in spans.get_finished_spans() if s.context and s.context.span_id == launch_id
    )
    assert launch.name == "launch"
    assert launch.parent is None  # the root of its own trace
    assert launch.attributes is not None
    assert launch.attributes["codebeaker.pooled"] is True
    assert launch.attributes["codebeaker.language"] == "javascript"
