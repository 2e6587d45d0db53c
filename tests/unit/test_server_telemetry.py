"""Server spans and metrics over the fake sandbox, through real gRPC and the SDK clients."""

from __future__ import annotations

import asyncio
import urllib.request

import grpc
import pytest
from grpc import aio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from codebeaker.client import AsyncClient, Client, UnavailableError
from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.conftest import Running, start_server
from tests.unit.fake_sandbox import FakeSandbox

SERVICE = "codebeaker.v1.ExecutionService"


def server_spans(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]


def sample(running: Running, name: str, **labels: str) -> float:
    value = running.app.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_the_server_span_continues_the_sdk_clients_span(
    running: Running, spans: InMemorySpanExporter
) -> None:
    address = f"127.0.0.1:{running.app.port}"
    async with AsyncClient(address) as client:
        result = await client.execute("python", "out hi\nexit 3")
    (rpc,) = server_spans(spans)
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert rpc.name == call.name == f"{SERVICE}/Execute"
    assert rpc.parent is not None and call.context is not None
    assert rpc.parent.span_id == call.context.span_id
    assert rpc.attributes is not None
    assert rpc.attributes["codebeaker.execution_id"] == result.execution_id
    assert rpc.attributes["codebeaker.status"] == "runtime_error"
    assert rpc.attributes["rpc.grpc.status_code"] == 0
    # The program failed; the service did not.
    assert rpc.status.status_code is StatusCode.UNSET
    assert call.status.status_code is StatusCode.UNSET
    assert call.attributes is not None
    assert call.attributes["codebeaker.status"] == "runtime_error"
    assert {s.name for s in spans.get_finished_spans()} >= {"admission"}


async def test_the_blocking_client_traces_streams_too(
    running: Running, spans: InMemorySpanExporter
) -> None:
    def stream() -> None:
        with Client(f"127.0.0.1:{running.app.port}") as client:
            assert list(client.stream("python", "out a\nexit 0"))

    await asyncio.to_thread(stream)
    (rpc,) = server_spans(spans)
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert rpc.name == call.name == f"{SERVICE}/ExecuteStream"
    assert rpc.parent is not None and call.context is not None
    assert rpc.parent.span_id == call.context.span_id


async def test_only_service_failures_are_error_spans(
    running: Running, spans: InMemorySpanExporter
) -> None:
    address = f"127.0.0.1:{running.app.port}"
    async with AsyncClient(address) as client:
        with pytest.raises(UnavailableError):
            await client.execute("python", "raise unavailable")
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await client.execute("cobol", "out x")
    codes = {
        s.attributes["rpc.grpc.status_code"]: s.status.status_code
        for s in server_spans(spans)
        if s.attributes
    }
    assert codes == {
        grpc.StatusCode.UNAVAILABLE.value[0]: StatusCode.ERROR,
        grpc.StatusCode.INVALID_ARGUMENT.value[0]: StatusCode.UNSET,
    }
    clients = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert all(s.status.status_code is StatusCode.ERROR for s in clients)


async def test_health_and_reflection_are_counted_but_not_traced(
    running: Running, spans: InMemorySpanExporter
) -> None:
    await running.stub.ListRuntimes(pb.ListRuntimesRequest())
    assert [s.name for s in server_spans(spans)] == [f"{SERVICE}/ListRuntimes"]
    labels = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "ListRuntimes"}
    assert sample(running, "grpc_server_started_total", **labels) == 1
    assert sample(running, "grpc_server_handled_total", **labels, grpc_code="OK") == 1
    assert sample(running, "grpc_server_handling_seconds_count", **labels) == 1


async def test_grpc_metrics_count_every_call_by_type_method_and_code(running: Running) -> None:
    def spec(source: str, language: str = "python") -> pb.ExecutionSpec:
        return pb.ExecutionSpec(language=language, source=source.encode())

    await running.stub.Execute(pb.ExecuteRequest(spec=spec("out x")))
    for bad in (spec("out x", "cobol"), spec("raise unavailable"), spec("raise crash")):
        with pytest.raises(aio.AioRpcError):
            await running.stub.Execute(pb.ExecuteRequest(spec=bad))
    call = running.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec("out a")))
    assert len([event async for event in call]) == 3
    execute = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Execute"}
    assert sample(running, "grpc_server_started_total", **execute) == 4
    for code in ("OK", "INVALID_ARGUMENT", "UNAVAILABLE", "INTERNAL"):
        assert sample(running, "grpc_server_handled_total", **execute, grpc_code=code) == 1
    stream = {"grpc_type": "server_stream", "grpc_service": SERVICE, "grpc_method": "ExecuteStream"}
    assert sample(running, "grpc_server_handled_total", **stream, grpc_code="OK") == 1
    assert sample(running, "codebeaker_executions_total", language="python", status="ok") == 2
    assert sample(running, "codebeaker_execution_duration_seconds_count", language="python") == 2
    assert sample(running, "codebeaker_phase_duration_seconds_count", phase="admission") == 4


async def test_cancelled_and_expired_calls_are_counted_as_such(running: Running) -> None:
    request = pb.ExecuteRequest(spec=pb.ExecutionSpec(language="python", source=b"block"))
    with pytest.raises(aio.AioRpcError):
        await running.stub.Execute(request, timeout=0.3)
    await asyncio.wait_for(running.sandbox.idle.wait(), 5)
    execute = {"grpc_type": "unary", "grpc_service": SERVICE, "grpc_method": "Execute"}
    handled = "grpc_server_handled_total"
    for _ in range(200):  # the server notices the deadline on its own loop turn
        if sample(running, handled, **execute, grpc_code="DEADLINE_EXCEEDED"):
            break
        await asyncio.sleep(0.01)
    assert sample(running, handled, **execute, grpc_code="DEADLINE_EXCEEDED") == 1


async def test_admission_waits_rejections_and_in_flight(config: ServerConfig) -> None:
    server = await start_server(
        config.with_values(max_concurrency=1, admission_wait=0.2), FakeSandbox()
    )
    try:
        blocked = pb.ExecuteRequest(spec=pb.ExecutionSpec(language="py", source=b"block"))
        holder = asyncio.ensure_future(server.stub.Execute(blocked))
        await server.sandbox.blocked.wait()
        assert sample(server, "codebeaker_executions_in_flight") == 1
        refused = pb.ExecuteRequest(spec=pb.ExecutionSpec(language="py", source=b"out x"))
        with pytest.raises(aio.AioRpcError):
            await server.stub.Execute(refused)
        assert sample(server, "codebeaker_admission_waits_total") == 1
        assert sample(server, "codebeaker_admission_rejections_total") == 1
        server.sandbox.release()
        await holder
        assert sample(server, "codebeaker_executions_in_flight") == 0
    finally:
        server.sandbox.release()
        await server.channel.close()
        await server.app.stop()


async def test_pool_state_is_read_at_scrape_time(running: Running) -> None:
    python = {"language": "python"}
    assert sample(running, "codebeaker_pool_size", **python) == 2
    assert sample(running, "codebeaker_pool_available", **python) == 1
    assert sample(running, "codebeaker_pool_launching", **python) == 1
    assert sample(running, "codebeaker_pool_hits_total", **python) == 5
    assert sample(running, "codebeaker_pool_misses_total", **python) == 2


async def test_metrics_are_served_over_http_only_when_asked(config: ServerConfig) -> None:
    quiet = await start_server(config, FakeSandbox())
    served = await start_server(config.with_values(metrics_address="127.0.0.1:0"), FakeSandbox())
    try:
        assert quiet.app.metrics_port is None
        assert served.app.metrics_port
        await served.stub.Execute(
            pb.ExecuteRequest(spec=pb.ExecutionSpec(language="js", source=b"out x"))
        )
        url = f"http://127.0.0.1:{served.app.metrics_port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        text = body.decode()
        assert 'codebeaker_executions_total{language="javascript",status="ok"} 1.0' in text
        assert "grpc_server_handling_seconds_bucket" in text
        assert "process_resident_memory_bytes" in text
    finally:
        for server in (quiet, served):
            await server.channel.close()
            await server.app.stop()
