"""The SDK's operations (`submit`, `Operation`, `list_operations`, ...) against a
canned queue over real gRPC (a grpc.aio server of its own; see fake_operations)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import (
    AsyncClient,
    AsyncOperation,
    Client,
    CodeBeakerError,
    DeadlineExceededError,
    ExecutionCancelledError,
    ExecutionResult,
    ExecutionStatus,
    FieldViolation,
    InvalidArgumentError,
    Limits,
    NotFoundError,
    Operation,
    OperationMetadata,
    OperationState,
    ResourceExhaustedError,
    ServiceError,
    UnavailableError,
    WaitTimeoutError,
    _wait_clock,
)
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.fake_operations import FakeQueue, Refusal, serve_queue

HELLO = ExecutionResult(status=ExecutionStatus.OK, stdout=b"hello\n", execution_id="exec-1")


@pytest.fixture
def queue() -> Iterator[tuple[FakeQueue, str]]:
    with serve_queue() as served:
        yield served


@pytest.fixture
def fake(queue: tuple[FakeQueue, str]) -> FakeQueue:
    return queue[0]


@pytest.fixture
def client(queue: tuple[FakeQueue, str]) -> Iterator[Client]:
    with Client(queue[1], timeout=10) as client:
        yield client


def status(code: int, message: str, *details: object) -> object:
    found = status_pb2.Status(code=code, message=message)
    for detail in details:
        found.details.add().Pack(detail)
    return found


def test_submit_returns_a_queued_operation_at_once(fake: FakeQueue, client: Client) -> None:
    operation = client.submit(
        "python", "print('hi')", stdin="in", limits=Limits(wall_time=2), request_id="job-1"
    )
    assert isinstance(operation, Operation)
    assert operation.name.startswith("operations/")
    assert operation.state is OperationState.QUEUED
    assert not operation.done and operation.error is None
    assert operation.metadata == OperationMetadata(
        state=OperationState.QUEUED,
        create_time=datetime.fromtimestamp(1_700_000_000, UTC),
        request_id="job-1",
        language="python",
    )
    (request,) = fake.submits
    assert request.request_id == "job-1"  # the idempotency key ...
    assert request.spec.request_id == "job-1"  # ... is also the id the server logs
    assert request.spec.source == b"print('hi')"
    assert request.spec.stdin == b"in"
    assert request.spec.limits.wall_time == Duration(seconds=2)


def test_the_same_request_id_is_the_same_operation(fake: FakeQueue, client: Client) -> None:
    first = client.submit("python", "1", request_id="same")
    again = client.submit("python", "1", request_id="same")
    other = client.submit("python", "1")
    assert again.name == first.name != other.name
    assert len(fake.submits) == 3


def test_bad_arguments_are_refused_before_any_call(fake: FakeQueue, client: Client) -> None:
    with pytest.raises(TypeError):
        client.submit("python", "x", args="not-a-list")
    with pytest.raises(ValueError, match="unknown operation state"):
        client.list_operations(state="SLEEPING")
    with pytest.raises(ValueError, match="page_size"):
        client.list_operations(page_size=0)
    with pytest.raises(ValueError, match="operations/ID"):
        client.get_operation("")
    assert fake.submits == [] and fake.filters == []


def test_submit_errors_are_the_sdks(fake: FakeQueue, client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as invalid:
        client.submit("cobol", "x")
    assert invalid.value.field_violations == [FieldViolation("spec.language", "unknown language")]

    retry = error_details_pb2.RetryInfo(retry_delay=Duration(seconds=3))
    info = error_details_pb2.ErrorInfo(reason="QUEUE_FULL", domain="codebeaker")
    fake.refusals["SubmitExecution"] = Refusal(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "the queue is full", [info, retry]
    )
    with pytest.raises(ResourceExhaustedError) as full:
        client.submit("python", "x")
    assert full.value.retry_after == 3.0
    assert full.value.reason == "QUEUE_FULL"

    fake.refusals["SubmitExecution"] = Refusal(grpc.StatusCode.UNAVAILABLE, "queue down")
    with pytest.raises(UnavailableError, match="queue down"):
        client.submit("python", "x")


def test_wait_returns_what_execute_would(fake: FakeQueue, client: Client) -> None:
    operation = client.submit("python", "print('hello')")
    fake.succeed_on_wait = 1
    assert operation.wait() == HELLO
    assert operation.done and operation.state is OperationState.SUCCEEDED
    assert operation.result() == HELLO  # done: no call needed
    assert len(fake.waits) == 1
    assert fake.waits[0] == _wait_clock.WAIT_CHUNK


def test_a_long_wait_is_a_loop_of_bounded_waits(
    fake: FakeQueue, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_wait_clock, "WAIT_CHUNK", 0.05)
    operation = client.submit("python", "print('hello')")
    fake.succeed_on_wait = 3
    assert operation.wait(timeout=60) == HELLO
    assert len(fake.waits) == 3
    assert all(0 < asked <= 0.05 for asked in fake.waits)


def test_wait_rides_out_a_server_that_is_briefly_unavailable(
    fake: FakeQueue, client: Client
) -> None:
    operation = client.submit("python", "x")
    fake.refusals["WaitOperation"] = Refusal(grpc.StatusCode.UNAVAILABLE, "restarting")
    fake.succeed_on_wait = 1  # the first wait that gets through
    assert operation.wait(timeout=30) == HELLO
    assert "WaitOperation" not in fake.refusals  # it was refused once, then retried


def test_wait_gives_up_on_a_server_gone_for_longer_than_the_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_wait_clock, "RECONNECT_WINDOW", 0.5)
    with serve_queue() as (fake, address):
        client = Client(address, timeout=5)
        operation = client.get_operation(fake.add("QUEUED"))
    try:
        with pytest.raises(UnavailableError):
            operation.wait()  # no timeout: only the window ends it
    finally:
        client.close()


def test_wait_gives_up_after_its_timeout_and_the_operation_goes_on(
    fake: FakeQueue, client: Client
) -> None:
    operation = client.submit("python", "x")
    with pytest.raises(WaitTimeoutError) as timed_out:
        operation.wait(timeout=0.2)
    assert isinstance(timed_out.value, TimeoutError)
    assert isinstance(timed_out.value, DeadlineExceededError)
    assert "still QUEUED after 0.2s" in timed_out.value.details
    assert all(asked <= 0.2 for asked in fake.waits)
    assert operation.state is OperationState.QUEUED
    assert fake.jobs[operation.name].metadata.state == pb.EXECUTION_STATE_QUEUED


def test_wait_returns_as_soon_as_another_party_finishes_it(fake: FakeQueue, client: Client) -> None:
    operation = client.submit("python", "x")
    outcome: list[ExecutionResult] = []
    waiter = threading.Thread(target=lambda: outcome.append(operation.wait()))
    waiter.start()
    assert fake.waiting.wait(timeout=10)
    fake.start(operation.name)
    fake.succeed(operation.name)
    waiter.join(timeout=10)
    assert outcome == [HELLO]
    assert operation.metadata.attempts == 1
    assert operation.metadata.execution_id == "exec-1"
    assert operation.metadata.start_time == datetime.fromtimestamp(1_700_000_100, UTC)
    assert operation.metadata.end_time == datetime.fromtimestamp(1_700_000_200, UTC)


def test_a_failed_operation_raises_its_error_as_a_call_would(
    fake: FakeQueue, client: Client
) -> None:
    name = fake.add("RUNNING")
    info = error_details_pb2.ErrorInfo(
        reason="ATTEMPTS_EXHAUSTED", domain="codebeaker", metadata={"attempts": "3"}
    )
    fake.fail(name, status(code_pb2.UNAVAILABLE, "its worker died 3 times", info))
    operation = client.get_operation(name)
    assert operation.done and operation.state is OperationState.FAILED
    assert isinstance(operation.error, UnavailableError)
    with pytest.raises(UnavailableError) as failed:
        operation.wait()
    assert failed.value.details == "its worker died 3 times"
    assert failed.value.reason == "ATTEMPTS_EXHAUSTED"
    assert failed.value.metadata == {"attempts": "3"}


def test_a_program_that_failed_is_a_result_not_an_error(fake: FakeQueue, client: Client) -> None:
    name = fake.add("RUNNING")
    verdict = pb.ExecutionResult(status=pb.EXECUTION_STATUS_RUNTIME_ERROR, exit_code=3)
    fake.succeed(name, verdict)
    result = client.get_operation(name).wait()
    assert result.status is ExecutionStatus.RUNTIME_ERROR and result.exit_code == 3


def test_cancel_a_queued_operation(fake: FakeQueue, client: Client) -> None:
    operation = client.submit("python", "x")
    operation.cancel()
    assert fake.cancels == [operation.name]
    assert operation.state is OperationState.CANCELLED and operation.done
    with pytest.raises(ExecutionCancelledError):
        operation.wait()


def test_cancel_a_running_operation_asks_it_to_stop(fake: FakeQueue, client: Client) -> None:
    name = fake.add("RUNNING")
    operation = client.get_operation(name)
    operation.cancel()
    assert operation.state is OperationState.RUNNING
    assert operation.metadata.cancel_requested


def test_get_by_name_or_id_refresh_and_delete(fake: FakeQueue, client: Client) -> None:
    name = fake.add("QUEUED")
    operation = client.get_operation(name.removeprefix("operations/"))
    assert operation.name == name
    fake.start(name)
    assert operation.state is OperationState.QUEUED  # what the server said last
    assert operation.refresh() is operation
    assert operation.metadata.state is OperationState.RUNNING
    operation.delete()
    with pytest.raises(NotFoundError) as missing:
        client.get_operation(name)
    assert missing.value.code == "NOT_FOUND"
    with pytest.raises(NotFoundError):
        operation.refresh()


def test_list_goes_through_every_page_newest_first(fake: FakeQueue, client: Client) -> None:
    names = [fake.add("QUEUED") for _ in range(7)]
    listed = list(client.list_operations(page_size=3))
    assert [op.name for op in listed] == names[::-1]
    assert fake.page_sizes == [3, 3, 3]
    assert fake.filters == ["", "", ""]


def test_list_filters_by_state_and_done(fake: FakeQueue, client: Client) -> None:
    queued = fake.add("QUEUED")
    running = fake.add("RUNNING")
    finished = fake.add("RUNNING")
    fake.succeed(finished)
    assert [op.name for op in client.list_operations(state="running")] == [running]
    assert [op.name for op in client.list_operations(state=OperationState.QUEUED)] == [queued]
    assert [op.name for op in client.list_operations(done=True)] == [finished]
    assert {op.name for op in client.list_operations(done=False)} == {queued, running}
    listed = list(client.list_operations(state=OperationState.SUCCEEDED, done=True))
    assert [op.state for op in listed] == [OperationState.SUCCEEDED]
    assert fake.filters[-1] == "state = SUCCEEDED AND done = true"


def test_every_operations_call_carries_the_clients_metadata(queue: tuple[FakeQueue, str]) -> None:
    fake, address = queue
    with Client(address, token="sekrit") as client:
        operation = client.submit("python", "x")
        operation.refresh()
        operation.cancel()
        list(client.list_operations())
    assert len(fake.metadata) == 5
    assert all(seen.get("authorization") == "Bearer sekrit" for seen in fake.metadata)


def test_operations_calls_fail_with_the_sdks_errors(fake: FakeQueue, client: Client) -> None:
    name = fake.add("QUEUED")
    operation = client.get_operation(name)
    fake.refusals["GetOperation"] = Refusal(grpc.StatusCode.UNAVAILABLE, "store down")
    with pytest.raises(UnavailableError, match="store down"):
        operation.refresh()
    fake.refusals["WaitOperation"] = Refusal(grpc.StatusCode.INTERNAL, "a bug")
    with pytest.raises(ServiceError, match="a bug"):
        operation.wait()
    fake.refusals["ListOperations"] = Refusal(grpc.StatusCode.INVALID_ARGUMENT, "bad filter")
    with pytest.raises(InvalidArgumentError):
        list(client.list_operations())
    fake.refusals["CancelOperation"] = Refusal(grpc.StatusCode.PERMISSION_DENIED, "no")
    with pytest.raises(CodeBeakerError) as denied:
        operation.cancel()
    assert denied.value.code == "PERMISSION_DENIED"


def test_submit_is_traced_like_execute(
    fake: FakeQueue, client: Client, spans: InMemorySpanExporter
) -> None:
    operation = client.submit("python", "x")
    (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert span.name == "codebeaker.v1.ExecutionService/SubmitExecution"
    assert span.attributes is not None
    assert span.attributes["codebeaker.operation"] == operation.name
    assert span.attributes["codebeaker.operation.state"] == "QUEUED"
    assert span.context is not None
    assert f"{span.context.span_id:016x}" in fake.metadata[0]["traceparent"]
    operation.refresh()
    names = [s.name for s in spans.get_finished_spans()]
    assert names[-1] == "google.longrunning.Operations/GetOperation"


async def test_the_async_client_has_the_same_operations(queue: tuple[FakeQueue, str]) -> None:
    fake, address = queue
    async with AsyncClient(address, timeout=10) as client:
        operation = await client.submit("python", "print('hello')", request_id="a-1")
        assert isinstance(operation, AsyncOperation)
        assert operation.state is OperationState.QUEUED
        again = await client.submit("python", "print('hello')", request_id="a-1")
        assert again.name == operation.name
        fake.succeed_on_wait = 1
        assert await operation.wait() == HELLO
        assert await operation.result() == HELLO

        other = await client.get_operation(fake.add("QUEUED"))
        with pytest.raises(WaitTimeoutError):
            await other.wait(timeout=0.1)
        await other.cancel()
        assert other.state is OperationState.CANCELLED
        with pytest.raises(ExecutionCancelledError):
            await other.wait()
        assert (await other.refresh()).done

        listed = [op.name async for op in client.list_operations(page_size=1)]
        assert listed == [other.name, operation.name]
        assert [op.name async for op in client.list_operations(state="QUEUED")] == []
        await other.delete()
        with pytest.raises(NotFoundError):
            await client.get_operation(other.name)


async def test_cancelling_an_async_wait_leaves_the_operation_alone(
    queue: tuple[FakeQueue, str],
) -> None:
    fake, address = queue
    async with AsyncClient(address) as client:
        operation = await client.submit("python", "x")
        waiting = asyncio.create_task(operation.wait())
        assert await asyncio.to_thread(fake.waiting.wait, 10)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert fake.cancels == []
        assert (await operation.refresh()).state is OperationState.QUEUED


async def test_async_wait_returns_when_the_operation_ends(queue: tuple[FakeQueue, str]) -> None:
    fake, address = queue
    async with AsyncClient(address) as client:
        operation = await client.submit("python", "x")
        waiting = asyncio.create_task(operation.wait())
        assert await asyncio.to_thread(fake.waiting.wait, 10)
        await asyncio.to_thread(fake.succeed, operation.name)
        assert await waiting == HELLO
