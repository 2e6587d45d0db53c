"""The servicer, interceptor and admission over a fake sandbox, through real gRPC."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.config import ServerConfig
from codebeaker.server.responses import MAX_CHUNK
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.conftest import Running, start_server, status_of
from tests.unit.fake_sandbox import FakeSandbox


def spec(source: str, language: str = "python", **fields: object) -> pb.ExecutionSpec:
    return pb.ExecutionSpec(language=language, source=source.encode(), **fields)  # type: ignore[arg-type]


async def execute(running: Running, spec_: pb.ExecutionSpec) -> pb.ExecutionResult:
    response: pb.ExecuteResponse = await running.stub.Execute(pb.ExecuteRequest(spec=spec_))
    return response.result


async def expect_error(running: Running, spec_: pb.ExecutionSpec) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        await running.stub.Execute(pb.ExecuteRequest(spec=spec_))
    return caught.value


async def test_execute_returns_output_and_verdict(running: Running) -> None:
    result = await execute(running, spec("out hello\nerr warn\nhex ff00fe\nexit 3"))
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR
    assert result.exit_code == 3
    assert result.stdout == b"hello\n\xff\x00\xfe"
    assert result.stderr == b"warn\n"
    assert len(result.execution_id) == 32
    assert running.sandbox.jobs[0].language.id == "python"


async def test_aliases_resolve_case_insensitively(running: Running) -> None:
    for alias in ("py", "Python3", "JS", "node"):
        result = await execute(running, spec("out x", language=alias))
        assert result.status == pb.EXECUTION_STATUS_OK
    assert [j.language.id for j in running.sandbox.jobs] == [
        "python",
        "python",
        "javascript",
        "javascript",
    ]


async def test_stream_orders_events_and_counts_sequence(running: Running) -> None:
    call = running.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec("out a\nerr b\nexit 0")))
    events = [event async for event in call]
    kinds = [event.WhichOneof("event") for event in events]
    assert kinds == ["started", "output", "output", "result"]
    assert [event.sequence for event in events] == [1, 2, 3, 4]
    assert events[0].started.language == "python"
    assert events[0].started.execution_id == events[-1].result.execution_id
    assert events[1].output.stream == pb.OUTPUT_STREAM_STDOUT
    assert events[2].output.stream == pb.OUTPUT_STREAM_STDERR
    assert events[3].result.stdout == b""  # streamed, not repeated


async def test_stream_splits_large_output_into_bounded_chunks(running: Running) -> None:
    call = running.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec("big 100000")))
    chunks = [e.output.data async for e in call if e.WhichOneof("event") == "output"]
    assert max(len(c) for c in chunks) <= MAX_CHUNK
    assert b"".join(chunks) == b"x" * 100000


async def test_execute_caps_buffered_output(running: Running) -> None:
    limits = pb.ResourceLimits(max_output_bytes=1000)
    result = await execute(running, spec("big 5000", limits=limits))
    assert result.stdout == b"x" * 1000


async def test_list_runtimes_reports_languages_and_aliases(running: Running) -> None:
    response = await running.stub.ListRuntimes(pb.ListRuntimesRequest())
    by_id = {r.language: r for r in response.runtimes}
    assert set(by_id) == {spec.id for spec in Catalog.load().specs()}
    assert {"python", "javascript"} <= set(by_id)
    assert "py" in by_id["python"].aliases
    assert by_id["javascript"].file_name == "main.js"


@pytest.mark.parametrize(
    ("spec_", "field"),
    [
        (pb.ExecutionSpec(source=b"out x"), "spec.language"),
        (pb.ExecutionSpec(language="python"), "spec.source"),
        (spec("out x", limits=pb.ResourceLimits(memory_bytes=1 << 40)), "spec.limits.memory_bytes"),
        (
            spec("out x", limits=pb.ResourceLimits(wall_time=Duration(seconds=10_000))),
            "spec.limits.wall_time",
        ),
        (
            spec("out x", limits=pb.ResourceLimits(cpu_time=Duration(seconds=-1))),
            "spec.limits.cpu_time",
        ),
        (spec("out x", limits=pb.ResourceLimits(max_processes=-5)), "spec.limits.max_processes"),
        (spec("x" * (2 << 20)), "spec.source"),
        (spec("out x", stdin=b"x" * (9 << 20)), "spec.stdin"),
        (spec("out x", env={"BAD-NAME": "1"}), "spec.env"),
        (spec("out x", args=["a\x00b"]), "spec.args[0]"),
        (spec("out x", version="1.0"), "spec.version"),
        (
            pb.ExecutionSpec(language="python", files=[pb.File(path="../etc/x", content=b"")]),
            "spec.files[0].path",
        ),
        (
            pb.ExecutionSpec(language="python", files=[pb.File(path="/abs.py", content=b"")]),
            "spec.files[0].path",
        ),
        (
            pb.ExecutionSpec(
                language="python",
                files=[pb.File(path="a.py", content=b""), pb.File(path="./a.py", content=b"")],
            ),
            "spec.files[1].path",
        ),
        (
            pb.ExecutionSpec(language="python", files=[pb.File(path="a.py")], entrypoint="b.py"),
            "spec.entrypoint",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument_naming_the_field(
    running: Running, spec_: pb.ExecutionSpec, field: str
) -> None:
    error = await expect_error(running, spec_)
    assert status_of(error) == grpc.StatusCode.INVALID_ARGUMENT
    assert field in (error.details() or "")
    assert running.sandbox.jobs == []


@pytest.mark.parametrize(
    "language", ["no-such-language", "../../bin/sh", "python; rm -rf /", "\x00"]
)
async def test_unknown_language_lists_known_ones(running: Running, language: str) -> None:
    error = await expect_error(running, spec("out x", language=language))
    assert status_of(error) == grpc.StatusCode.INVALID_ARGUMENT
    listed = (error.details() or "").replace(",", " ").split()
    assert {"javascript", "php", "python"} <= set(listed)


async def test_engine_unavailable_is_unavailable(running: Running) -> None:
    error = await expect_error(running, spec("raise unavailable"))
    assert status_of(error) == grpc.StatusCode.UNAVAILABLE


async def test_unexpected_failure_is_internal_without_details(running: Running) -> None:
    error = await expect_error(running, spec("raise crash"))
    assert status_of(error) == grpc.StatusCode.INTERNAL
    assert "secret" not in (error.details() or "")


async def test_stream_errors_surface_mid_stream(running: Running) -> None:
    call = running.stub.ExecuteStream(
        pb.ExecuteStreamRequest(spec=spec("out a\nraise unavailable"))
    )
    seen = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for event in call:
            seen.append(event.WhichOneof("event"))
    assert status_of(caught.value) == grpc.StatusCode.UNAVAILABLE
    assert seen[0] == "started"


async def test_cancelled_call_tears_down_the_sandbox(running: Running) -> None:
    call = running.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec("block")))
    first = await call.read()
    assert isinstance(first, pb.ExecuteStreamResponse)  # not aio.EOF
    assert first.WhichOneof("event") == "started"
    await running.sandbox.blocked.wait()
    job_id = running.sandbox.jobs[0].execution_id
    call.cancel()
    await asyncio.wait_for(running.sandbox.idle.wait(), 5)
    assert running.sandbox.torn_down == [job_id]


async def test_deadline_exceeded_tears_down_the_sandbox(running: Running) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await running.stub.Execute(pb.ExecuteRequest(spec=spec("block")), timeout=0.5)
    assert status_of(caught.value) == grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(running.sandbox.idle.wait(), 5)
    assert len(running.sandbox.torn_down) == 1


async def test_admission_refuses_beyond_capacity_with_retry_hint(config: ServerConfig) -> None:
    server = await start_server(
        config.with_values(max_concurrency=1, admission_wait=0.2), FakeSandbox()
    )
    try:
        holder = asyncio.ensure_future(server.stub.Execute(pb.ExecuteRequest(spec=spec("block"))))
        await server.sandbox.blocked.wait()
        call = server.stub.Execute(pb.ExecuteRequest(spec=spec("out x")))
        with pytest.raises(aio.AioRpcError) as caught:
            await call
        assert status_of(caught.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        trailing = dict(caught.value.trailing_metadata() or ())
        assert float(trailing["retry-after"]) >= 0.2
        server.sandbox.release()
        assert (await holder).result.status == pb.EXECUTION_STATUS_OK
        assert (await execute(server, spec("out y"))).status == pb.EXECUTION_STATUS_OK
    finally:
        server.sandbox.release()
        await server.channel.close()
        await server.app.stop()


async def wait_for_health(channel: aio.Channel, wanted: int) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    request = health_pb2.HealthCheckRequest(service="codebeaker.v1.ExecutionService")
    call = stub.Watch(request)
    try:
        async with asyncio.timeout(10):
            async for response in call:
                if response.status == wanted:
                    return
    finally:
        call.cancel()


async def test_health_serving_when_sandbox_ready(running: Running) -> None:
    await wait_for_health(running.channel, health_pb2.HealthCheckResponse.SERVING)
    runtimes = await running.stub.ListRuntimes(pb.ListRuntimesRequest())
    defaults = [r for r in runtimes.runtimes if r.is_default]
    assert len(defaults) == len({r.language for r in runtimes.runtimes})  # one per language
    versions = {r.language: r.version for r in defaults}
    assert (versions["python"], versions["javascript"]) == ("3.11.2", "18.19.0")
    packages = {r.language: [(p.name, p.version) for p in r.packages] for r in defaults}
    assert packages["python"] == [("numpy", "1.24.2"), ("pandas", "1.5.3")]  # sorted by name
    assert packages["javascript"] == [] and packages["c"] == []


async def test_health_not_serving_when_sandbox_unready(config: ServerConfig) -> None:
    server = await start_server(config, FakeSandbox(unready="no Docker engine"))
    try:
        stub = health_pb2_grpc.HealthStub(server.channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""))
        assert response.status == health_pb2.HealthCheckResponse.NOT_SERVING
    finally:
        await server.channel.close()
        await server.app.stop()


async def test_shutdown_lets_in_flight_finish_and_refuses_new_calls(config: ServerConfig) -> None:
    server = await start_server(config.with_values(shutdown_grace=10.0), FakeSandbox())
    try:
        in_flight = asyncio.ensure_future(
            server.stub.Execute(pb.ExecuteRequest(spec=spec("block\nout done")))
        )
        await server.sandbox.blocked.wait()
        health = health_pb2_grpc.HealthStub(server.channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        while (await watch.read()).status != health_pb2.HealthCheckResponse.SERVING:
            pass
        stopping = asyncio.ensure_future(server.app.stop())
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        server.sandbox.release()
        result = (await in_flight).result
        assert result.stdout == b"done\n"
        await stopping
        assert server.sandbox.closed
        with pytest.raises(aio.AioRpcError) as caught:
            await server.stub.Execute(pb.ExecuteRequest(spec=spec("out x")), timeout=2)
        assert status_of(caught.value) in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
        )
    finally:
        await server.channel.close()


async def test_shutdown_grace_cancels_stragglers(config: ServerConfig) -> None:
    server = await start_server(config.with_values(shutdown_grace=0.3), FakeSandbox())
    try:
        straggler = asyncio.ensure_future(
            server.stub.Execute(pb.ExecuteRequest(spec=spec("block")))
        )
        await server.sandbox.blocked.wait()
        await server.app.stop()
        with pytest.raises(aio.AioRpcError):
            await straggler
        assert server.sandbox.running == 0
        assert server.sandbox.closed
    finally:
        await server.channel.close()


@pytest.mark.parametrize("method", ["Execute", "ExecuteStream"])
async def test_a_request_that_does_not_parse_is_invalid_argument(
    running: Running, method: str
) -> None:
    path = f"/codebeaker.v1.ExecutionService/{method}"
    garbage = pb.ExecuteRequest(spec=pb.ExecutionSpec(language="python")).SerializeToString()[:-2]
    if method == "Execute":
        execute: aio.UnaryUnaryMultiCallable[bytes, bytes] = running.channel.unary_unary(path)
        call = execute(garbage)
        with pytest.raises(aio.AioRpcError) as caught:
            await call
    else:
        open_stream: aio.UnaryStreamMultiCallable[bytes, bytes] = running.channel.unary_stream(path)
        stream = open_stream(garbage)
        with pytest.raises(aio.AioRpcError) as caught:
            async for _ in stream:
                pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (caught.value.details() or "")
    assert running.sandbox.jobs == []
