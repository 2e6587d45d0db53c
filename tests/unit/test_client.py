"""The SDK (`Client`, `AsyncClient`) against a canned service over real gRPC."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.client import (
    AsyncClient,
    Client,
    CodeBeakerError,
    DeadlineExceededError,
    ExecutionCancelledError,
    ExecutionResult,
    ExecutionStatus,
    File,
    Finished,
    InvalidArgumentError,
    Limits,
    Output,
    OutputStream,
    ResourceExhaustedError,
    Runtime,
    ServiceError,
    Started,
    StreamEvent,
    UnavailableError,
)
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.fake_service import NOT_UTF8, Failure, FakeExecutionService, serve

ERRORS: list[tuple[grpc.StatusCode, type[CodeBeakerError]]] = [
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
    (grpc.StatusCode.CANCELLED, ExecutionCancelledError),
    (grpc.StatusCode.INTERNAL, ServiceError),
    (grpc.StatusCode.UNIMPLEMENTED, ServiceError),
]

FULL_RESULT = pb.ExecutionResult(
    status=pb.EXECUTION_STATUS_RUNTIME_ERROR,
    exit_code=3,
    signal=0,
    stdout=NOT_UTF8,
    stderr=b"Traceback\xff",
    stdout_truncated=True,
    stderr_truncated=False,
    wall_time=Duration(seconds=2, nanos=500_000_000),
    cpu_time=Duration(nanos=125_000_000),
    peak_memory_bytes=12_345_678,
    execution_id="exec-42",
    message="exited with code 3",
)

EXPECTED_RESULT = ExecutionResult(
    status=ExecutionStatus.RUNTIME_ERROR,
    exit_code=3,
    signal=0,
    stdout=NOT_UTF8,
    stderr=b"Traceback\xff",
    stdout_truncated=True,
    stderr_truncated=False,
    wall_time=2.5,
    cpu_time=0.125,
    peak_memory_bytes=12_345_678,
    execution_id="exec-42",
    message="exited with code 3",
)


@dataclass
class FakeServer:
    service: FakeExecutionService
    address: str


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    service = FakeExecutionService()
    with serve(service) as address:
        yield FakeServer(service, address)


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    with Client(fake.address) as client:
        yield client


@pytest.fixture
def dead_address() -> Iterator[str]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def expected_stream(result: ExecutionResult) -> list[StreamEvent]:
    return [
        Started(execution_id="exec-1", language="python", version="3.11.2"),
        Output(OutputStream.STDOUT, b"hello "),
        Output(OutputStream.STDERR, NOT_UTF8),
        Output(OutputStream.STDOUT, b"world\n"),
        Finished(result),
    ]


# --- sync client -------------------------------------------------------------


def test_execute_returns_a_typed_result_with_bytes_intact(fake: FakeServer, client: Client) -> None:
    fake.service.result = FULL_RESULT
    result = client.execute("python", "raise SystemExit(3)")
    assert result == EXPECTED_RESULT
    assert not result.ok


def test_ok_verdict(client: Client) -> None:
    result = client.execute("python", "print('out', end='')")
    assert result.ok
    assert result.status is ExecutionStatus.OK
    assert result.stdout == b"out"
    assert result.wall_time == 1.25


def test_execute_sends_the_whole_spec(fake: FakeServer, client: Client) -> None:
    client.execute(
        "py",
        files={"main.py": "import util", "util.py": b"\xffdata"},
        entrypoint="main.py",
        stdin=NOT_UTF8,
        args=["-x", "two words"],
        env={"A": "1"},
        limits=Limits(
            wall_time=1.5,
            cpu_time=0.25,
            memory_bytes=1 << 28,
            max_processes=8,
            max_output_bytes=1024,
        ),
        version="3.11",
        request_id="req-7",
    )
    [spec] = fake.service.specs
    assert spec.language == "py"
    assert spec.source == b""
    assert [(f.path, f.content) for f in spec.files] == [
        ("main.py", b"import util"),
        ("util.py", b"\xffdata"),
    ]
    assert spec.entrypoint == "main.py"
    assert spec.stdin == NOT_UTF8
    assert list(spec.args) == ["-x", "two words"]
    assert dict(spec.env) == {"A": "1"}
    assert spec.limits.wall_time == Duration(seconds=1, nanos=500_000_000)
    assert spec.limits.cpu_time == Duration(nanos=250_000_000)
    assert spec.limits.memory_bytes == 1 << 28
    assert spec.limits.max_processes == 8
    assert spec.limits.max_output_bytes == 1024
    assert spec.version == "3.11"
    assert spec.request_id == "req-7"


def test_source_text_is_utf8_and_unset_limits_stay_unset(fake: FakeServer, client: Client) -> None:
    client.execute("python", "print('héllo')", files=[File("data.bin", b"\x00\xff")])
    client.execute("python", b"\xff")
    first, second = fake.service.specs
    assert first.source == "print('héllo')".encode()
    assert [(f.path, f.content) for f in first.files] == [("data.bin", b"\x00\xff")]
    assert not first.HasField("limits")
    assert second.source == b"\xff"


def test_bad_arguments_are_refused_before_any_call(fake: FakeServer, client: Client) -> None:
    with pytest.raises(TypeError):
        client.execute("python", "", args="-x")
    with pytest.raises(ValueError):
        Limits(wall_time=-1)
    with pytest.raises(ValueError):
        Limits(memory_bytes=-5)
    assert fake.service.specs == []


def test_a_verdict_this_sdk_does_not_know_is_unspecified(fake: FakeServer, client: Client) -> None:
    fake.service.result = pb.ExecutionResult(status=99)  # type: ignore[arg-type]
    assert client.execute("python", "").status is ExecutionStatus.UNSPECIFIED


def test_stream_yields_started_output_finished_in_order(fake: FakeServer, client: Client) -> None:
    fake.service.result = FULL_RESULT
    stream = client.stream("python", "...")
    assert list(stream) == expected_stream(EXPECTED_RESULT)
    assert stream.result == EXPECTED_RESULT


def test_runtimes(client: Client) -> None:
    assert client.runtimes() == [
        Runtime("python", "3.11.2", ("py", "python3"), "main.py", False),
        Runtime("javascript", "18.19.0", ("js", "node"), "main.js", False),
    ]


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_unary_errors_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "the details")
    with pytest.raises(error) as caught:
        client.execute("python", "")
    assert caught.type is error
    assert caught.value.code == code.name
    assert caught.value.details == "the details"
    with pytest.raises(error):
        client.runtimes()


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_stream_errors_at_start_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "at start")
    with pytest.raises(error) as caught:
        next(client.stream("python", ""))
    assert caught.type is error
    assert caught.value.details == "at start"


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_stream_errors_mid_stream_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "mid-stream")
    fake.service.fail_mid_stream = True
    events: list[StreamEvent] = []
    with pytest.raises(error) as caught:
        events.extend(client.stream("python", ""))
    assert caught.type is error
    assert caught.value.details == "mid-stream"
    assert events == expected_stream(ExecutionResult(ExecutionStatus.OK))[:-1]


def test_resource_exhausted_carries_the_retry_hint(fake: FakeServer, client: Client) -> None:
    fake.service.failure = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", retry_after="2.5")
    with pytest.raises(ResourceExhaustedError) as caught:
        client.execute("python", "")
    assert caught.value.retry_after == 2.5
    fake.service.failure = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
    with pytest.raises(ResourceExhaustedError) as caught:
        client.execute("python", "")
    assert caught.value.retry_after is None


def test_unknown_language_is_invalid_argument_naming_the_known_ones(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match="known languages: javascript, python"):
        client.execute("cobol", "")


def test_per_call_timeout_is_a_deadline(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    with pytest.raises(DeadlineExceededError):
        client.execute("python", "", timeout=0.2)
    assert fake.service.caller_left.wait(10)


def test_client_default_timeout_applies_to_streams(fake: FakeServer) -> None:
    fake.service.hang = True
    with Client(fake.address, timeout=0.2) as client:
        stream = client.stream("python", "")
        assert isinstance(next(stream), Started)
        with pytest.raises(DeadlineExceededError):
            list(stream)


def test_closing_a_stream_early_cancels_the_execution(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    stream = client.stream("python", "")
    assert isinstance(next(stream), Started)
    stream.close()
    assert fake.service.caller_left.wait(10)
    assert list(stream) == []


def test_a_stream_can_be_closed_from_another_thread(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    stream = client.stream("python", "")

    def close_once_running() -> None:
        fake.service.arrived.wait(10)
        stream.close()

    closer = threading.Thread(target=close_once_running)
    closer.start()
    events = list(stream)  # ends quietly whenever the close lands
    closer.join()
    assert all(not isinstance(event, Finished) for event in events)
    assert fake.service.caller_left.wait(10)


def test_leaving_a_stream_block_cancels_the_execution(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    with client.stream("python", "") as stream:
        for event in stream:
            if isinstance(event, Output):
                break
    assert fake.service.caller_left.wait(10)


def test_a_stream_without_a_result_is_a_service_error(fake: FakeServer, client: Client) -> None:
    fake.service.omit_result = True
    with pytest.raises(ServiceError, match="without a result"):
        list(client.stream("python", ""))


def test_address_defaults_to_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBEAKER_ADDRESS", fake.address)
    with Client() as client:
        assert client.address == fake.address
        assert client.execute("python", "").ok
    monkeypatch.delenv("CODEBEAKER_ADDRESS")
    with Client() as client:
        assert client.address == "127.0.0.1:50051"


def test_unreachable_service_is_unavailable(dead_address: str) -> None:
    with Client(dead_address) as client:
        with pytest.raises(UnavailableError):
            client.runtimes()
        with pytest.raises(UnavailableError):
            list(client.stream("python", ""))


# --- asyncio client ----------------------------------------------------------


async def test_async_execute_returns_a_typed_result(fake: FakeServer) -> None:
    fake.service.result = FULL_RESULT
    async with AsyncClient(fake.address) as client:
        assert await client.execute("python", "", stdin="text") == EXPECTED_RESULT
    assert fake.service.specs[0].stdin == b"text"


async def test_async_stream_yields_events_in_order(fake: FakeServer) -> None:
    fake.service.result = FULL_RESULT
    async with AsyncClient(fake.address) as client:
        stream = client.stream("python", "")
        events = [event async for event in stream]
    assert events == expected_stream(EXPECTED_RESULT)
    assert stream.result == EXPECTED_RESULT


async def test_async_runtimes(fake: FakeServer) -> None:
    async with AsyncClient(fake.address) as client:
        runtimes = await client.runtimes()
    assert [r.language for r in runtimes] == ["python", "javascript"]


@pytest.mark.parametrize(("code", "error"), ERRORS)
async def test_async_errors_map_to_exceptions(
    fake: FakeServer, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "oops", retry_after="7")
    async with AsyncClient(fake.address) as client:
        with pytest.raises(error) as caught:
            await client.execute("python", "")
        assert caught.type is error
        assert caught.value.details == "oops"
        if isinstance(caught.value, ResourceExhaustedError):
            assert caught.value.retry_after == 7
        with pytest.raises(error):
            await client.runtimes()

        fake.service.fail_mid_stream = True
        events: list[StreamEvent] = []
        with pytest.raises(error) as caught:
            events.extend([event async for event in client.stream("python", "")])
        assert caught.type is error


async def test_async_mid_stream_error_after_events(fake: FakeServer) -> None:
    fake.service.failure = Failure(grpc.StatusCode.UNAVAILABLE, "engine gone")
    fake.service.fail_mid_stream = True
    events: list[StreamEvent] = []
    async with AsyncClient(fake.address) as client:
        with pytest.raises(UnavailableError, match="engine gone"):
            async for event in client.stream("python", ""):
                events.append(event)
    assert len(events) == 4
    assert isinstance(events[0], Started)


async def test_async_timeout_is_a_deadline(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address, timeout=0.2) as client:
        with pytest.raises(DeadlineExceededError):
            await client.execute("python", "")


async def test_async_aclose_cancels_the_execution(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address) as client:
        stream = client.stream("python", "")
        assert isinstance(await anext(stream), Started)
        await stream.aclose()
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)
        assert [event async for event in stream] == []


async def test_async_cancelling_the_reading_task_cancels_the_execution(
    fake: FakeServer,
) -> None:
    fake.service.hang = True
    fake.service.chunks = [(pb.OUTPUT_STREAM_STDOUT, b"first")]
    first_output = asyncio.Event()

    async def consume(client: AsyncClient) -> None:
        async for event in client.stream("python", ""):
            if isinstance(event, Output):
                first_output.set()

    async with AsyncClient(fake.address) as client:
        task = asyncio.create_task(consume(client))
        await first_output.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)


async def test_async_cancelling_execute_cancels_the_execution(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address) as client:
        task = asyncio.create_task(client.execute("python", ""))
        assert await asyncio.to_thread(fake.service.arrived.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)


async def test_async_unreachable_service_is_unavailable(dead_address: str) -> None:
    async with AsyncClient(dead_address) as client:
        with pytest.raises(UnavailableError):
            await client.execute("python", "")
