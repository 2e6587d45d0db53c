"""A canned queue: SubmitExecution and google.longrunning.Operations on a real
grpc.aio server (127.0.0.1, port 0), for testing the SDK's operations and the CLI.

The server runs on an event loop of its own in a background thread, so the
blocking client, the asyncio client (on the test's loop) and a CLI subprocess
can all talk to it while the test moves operations along (`start`, `succeed`,
`fail`) from its own thread. Nothing runs: the test says what each operation
becomes. It plays the contract (names, states, filters, paging, WaitOperation
holding the call until done or its timeout, rich errors), nothing more.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.longrunning import (  # type: ignore[import-untyped, unused-ignore]
    operations_pb2,
    operations_pb2_grpc,
)
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    code_pb2,
    error_details_pb2,
    status_pb2,
)
from grpc import aio

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

T = TypeVar("T")
_FINAL = {pb.EXECUTION_STATE_SUCCEEDED, pb.EXECUTION_STATE_FAILED, pb.EXECUTION_STATE_CANCELLED}
_STATES = {
    "QUEUED": pb.EXECUTION_STATE_QUEUED,
    "RUNNING": pb.EXECUTION_STATE_RUNNING,
    "SUCCEEDED": pb.EXECUTION_STATE_SUCCEEDED,
    "FAILED": pb.EXECUTION_STATE_FAILED,
    "CANCELLED": pb.EXECUTION_STATE_CANCELLED,
}


@dataclass
class Refusal:
    """Abort the next call of a method with this status and rich details."""

    code: grpc.StatusCode
    message: str
    details: list[Message] = field(default_factory=list)


@dataclass
class Job:
    name: str
    spec: pb.ExecutionSpec
    request_id: str
    metadata: pb.ExecutionMetadata
    response: pb.ExecuteResponse | None = None
    error: Any = None  # google.rpc.Status

    @property
    def done(self) -> bool:
        return self.metadata.state in _FINAL

    def message(self) -> Any:
        operation = operations_pb2.Operation(name=self.name, done=self.done)
        operation.metadata.Pack(self.metadata)
        if self.response is not None:
            operation.response.Pack(self.response)
        elif self.error is not None:
            operation.error.CopyFrom(self.error)
        return operation


@dataclass
class FakeQueue:
    """The operations, newest last, and what the service was asked."""

    jobs: dict[str, Job] = field(default_factory=dict)
    refusals: dict[str, Refusal] = field(default_factory=dict)
    submits: list[pb.SubmitExecutionRequest] = field(default_factory=list)
    filters: list[str] = field(default_factory=list)
    page_sizes: list[int] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)  # each WaitOperation's timeout
    cancels: list[str] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)  # of every call
    # Succeed the operation (with `result`) when this many WaitOperations have arrived.
    succeed_on_wait: int | None = None
    result: pb.ExecutionResult = field(
        default_factory=lambda: pb.ExecutionResult(
            status=pb.EXECUTION_STATUS_OK, stdout=b"hello\n", execution_id="exec-1"
        )
    )
    # Set (from the loop) whenever a WaitOperation is being held.
    waiting: threading.Event = field(default_factory=threading.Event)
    changed: asyncio.Condition | None = None
    loop: asyncio.AbstractEventLoop | None = None

    # -- what the test does (from its own thread) ---------------------------------

    def add(self, state: str = "QUEUED", **spec: Any) -> str:
        """A submitted operation, QUEUED or (started once) RUNNING; its name."""
        assert state in ("QUEUED", "RUNNING")
        name = self._on_loop(self._add(pb.ExecutionSpec(language="python", **spec), "", "QUEUED"))
        if state == "RUNNING":
            self.start(name)
        return name

    def start(self, name: str) -> None:
        self._on_loop(self._update(name, pb.EXECUTION_STATE_RUNNING))

    def succeed(self, name: str, result: pb.ExecutionResult | None = None) -> None:
        response = pb.ExecuteResponse(result=result or self.result)
        self._on_loop(self._update(name, pb.EXECUTION_STATE_SUCCEEDED, response=response))

    def fail(self, name: str, error: Any, state: str = "FAILED") -> None:
        """End it FAILED (or CANCELLED) with `error`, a google.rpc.Status."""
        assert state in ("FAILED", "CANCELLED")
        self._on_loop(self._update(name, _STATES[state], error=error))

    def _on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    # -- on the loop -------------------------------------------------------------

    async def _add(self, spec: pb.ExecutionSpec, request_id: str, state: str) -> str:
        name = f"operations/{uuid.uuid4().hex[:12]}"
        created = Timestamp(seconds=1_700_000_000 + len(self.jobs))
        metadata = pb.ExecutionMetadata(
            state=_STATES[state],
            create_time=created,
            request_id=request_id,
            language=spec.language,
        )
        self.jobs[name] = Job(name, spec, request_id, metadata)
        await self._notify()
        return name

    async def _update(
        self,
        name: str,
        state: pb.ExecutionState.ValueType,
        response: pb.ExecuteResponse | None = None,
        error: Any = None,
    ) -> None:
        job = self.jobs[name]
        job.metadata.state = state
        if state == pb.EXECUTION_STATE_RUNNING:
            job.metadata.attempts += 1
            job.metadata.start_time.FromSeconds(1_700_000_100)
            job.metadata.execution_id = f"exec-{job.metadata.attempts}"
        if state in _FINAL:
            job.metadata.end_time.FromSeconds(1_700_000_200)
        job.response, job.error = response, error
        await self._notify()

    async def _notify(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()


class _Execution(pb_grpc.ExecutionServiceServicer):
    """SubmitExecution, and the runtimes the CLI infers languages from; nothing runs."""

    def __init__(self, queue: FakeQueue) -> None:
        self.queue = queue

    async def Execute(
        self, request: pb.ExecuteRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ExecuteResponse:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake queue only queues")

    async def ExecuteStream(
        self, request: pb.ExecuteStreamRequest, context: aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.ExecuteStreamResponse]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake queue only queues")
        yield pb.ExecuteStreamResponse()  # never reached: makes this a stream handler

    async def ListRuntimes(
        self, request: pb.ListRuntimesRequest, context: aio.ServicerContext[Any, Any]
    ) -> pb.ListRuntimesResponse:
        return pb.ListRuntimesResponse(
            runtimes=[
                pb.Runtime(language="python", version="3.11", file_name="main.py"),
                pb.Runtime(language="c", version="12", file_name="main.c", compiled=True),
            ]
        )

    async def SubmitExecution(
        self, request: pb.SubmitExecutionRequest, context: aio.ServicerContext[Any, Any]
    ) -> Any:
        await _admit(self.queue, "SubmitExecution", context)
        self.queue.submits.append(request)
        if request.spec.language not in ("python", "c"):
            bad = error_details_pb2.BadRequest()
            bad.field_violations.add(field="spec.language", description="unknown language")
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "unknown language", [bad])
        if request.request_id:
            for job in self.queue.jobs.values():
                if job.request_id == request.request_id:
                    return job.message()
        name = await self.queue._add(request.spec, request.request_id, "QUEUED")
        return self.queue.jobs[name].message()


class _Operations(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    def __init__(self, queue: FakeQueue) -> None:
        self.queue = queue

    async def GetOperation(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._admit("GetOperation", context)
        return (await self._job(request.name, context)).message()

    async def ListOperations(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._admit("ListOperations", context)
        self.queue.filters.append(request.filter)
        self.queue.page_sizes.append(request.page_size)
        if request.name != "operations":
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, "name must be operations")
        wanted = await _parse_filter(request.filter, context)
        selected = [
            job
            for job in reversed(self.queue.jobs.values())  # newest first
            if all(_matches(job, key, value) for key, value in wanted)
        ]
        start = int(request.page_token or 0)
        end = start + (request.page_size or 50)
        response = operations_pb2.ListOperationsResponse(
            operations=[job.message() for job in selected[start:end]],
            next_page_token=str(end) if end < len(selected) else "",
        )
        return response

    async def CancelOperation(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._admit("CancelOperation", context)
        job = await self._job(request.name, context)
        self.queue.cancels.append(job.name)
        if job.metadata.state == pb.EXECUTION_STATE_QUEUED:
            error = status_pb2.Status(code=code_pb2.CANCELLED, message="cancelled while queued")
            await self.queue._update(job.name, pb.EXECUTION_STATE_CANCELLED, error=error)
        elif job.metadata.state == pb.EXECUTION_STATE_RUNNING:
            job.metadata.cancel_requested = True
        return empty_pb2.Empty()

    async def DeleteOperation(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._admit("DeleteOperation", context)
        job = await self._job(request.name, context)
        del self.queue.jobs[job.name]
        return empty_pb2.Empty()

    async def WaitOperation(self, request: Any, context: aio.ServicerContext[Any, Any]) -> Any:
        await self._admit("WaitOperation", context)
        job = await self._job(request.name, context)
        timeout = request.timeout.ToNanoseconds() / 1e9
        self.queue.waits.append(timeout)
        if self.queue.succeed_on_wait == len(self.queue.waits):
            response = pb.ExecuteResponse(result=self.queue.result)
            await self.queue._update(job.name, pb.EXECUTION_STATE_SUCCEEDED, response=response)
        assert self.queue.changed is not None
        async with self.queue.changed:
            self.queue.waiting.set()
            try:
                await asyncio.wait_for(self.queue.changed.wait_for(lambda: job.done), timeout)
            except TimeoutError:
                pass
            finally:
                self.queue.waiting.clear()
        return job.message()

    async def _admit(self, method: str, context: aio.ServicerContext[Any, Any]) -> None:
        await _admit(self.queue, method, context)

    async def _job(self, name: str, context: aio.ServicerContext[Any, Any]) -> Job:
        job = self.queue.jobs.get(name)
        if job is None:
            info = error_details_pb2.ResourceInfo(resource_type="operation", resource_name=name)
            await _abort(context, grpc.StatusCode.NOT_FOUND, f"no operation {name}", [info])
        assert job is not None
        return job


async def _admit(queue: FakeQueue, method: str, context: aio.ServicerContext[Any, Any]) -> None:
    queue.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
    refusal = queue.refusals.pop(method, None)
    if refusal is not None:
        await _abort(context, refusal.code, refusal.message, refusal.details)


async def _abort(
    context: aio.ServicerContext[Any, Any],
    code: grpc.StatusCode,
    message: str,
    details: list[Message] | None = None,
) -> None:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details or ():
        status.details.add().Pack(detail)
    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
    await context.abort(code, message)


async def _parse_filter(text: str, context: aio.ServicerContext[Any, Any]) -> list[tuple[str, str]]:
    terms: list[tuple[str, str]] = []
    for term in filter(None, (t.strip() for t in text.split(" AND "))):
        key, sep, value = (part.strip() for part in term.partition("="))
        if not sep or key not in ("state", "done") or not value:
            await _abort(context, grpc.StatusCode.INVALID_ARGUMENT, f"bad filter {text!r}")
        terms.append((key, value))
    return terms


def _matches(job: Job, key: str, value: str) -> bool:
    if key == "done":
        return job.done == (value == "true")
    return job.metadata.state == _STATES.get(value)


@contextmanager
def serve_queue() -> Iterator[tuple[FakeQueue, str]]:
    """Run a FakeQueue on 127.0.0.1 port 0 in a thread; yields it and its address."""
    queue = FakeQueue()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: aio.Server | None = None
    port = 0

    async def start() -> None:
        nonlocal server, port
        queue.changed = asyncio.Condition()
        queue.loop = loop
        server = aio.server()
        pb_grpc.add_ExecutionServiceServicer_to_server(_Execution(queue), server)
        operations_pb2_grpc.add_OperationsServicer_to_server(_Operations(queue), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-queue", daemon=True)
    thread.start()
    started.wait(timeout=10)
    try:
        yield queue, f"127.0.0.1:{port}"
    finally:
        assert server is not None
        asyncio.run_coroutine_threadsafe(server.stop(grace=None), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
