"""The asyncio client: `AsyncClient` and its async stream iterator (grpc.aio).

For services and agents that run many executions concurrently on one event
loop. The conversions and error mapping are the sync client's (`_convert`,
`errors`); what is particular here is cancellation: cancelling the awaiting
task, `aclose()` or leaving `async with` cancels the RPC, and the server kills
the program. `submit` returns an `AsyncOperation` (in `aio_operation`),
`create_session` an `AsyncSession` (in `aio_session`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self, Unpack

import grpc

from codebeaker.client._channel import PemSource, connection
from codebeaker.client._convert import (
    build_spec,
    event_from_proto,
    result_from_proto,
    runtimes_from_proto,
)
from codebeaker.client._operation_convert import list_filter, operation_name, snapshot_from_proto
from codebeaker.client._session_convert import (
    create_request,
    info_from_proto,
    list_request,
    session_name,
    watch_request,
)
from codebeaker.client._settings import ChannelOptions, deadline
from codebeaker.client._tracing import CallSpan, traced_call
from codebeaker.client.aio_exec_stream import AsyncSessionWatch
from codebeaker.client.aio_operation import AsyncOperation, AsyncOperationCalls, iterate_operations
from codebeaker.client.aio_session import AsyncSession, AsyncSessionCalls, iterate_sessions
from codebeaker.client.errors import CodeBeakerError, ServiceError, translate_rpc_errors
from codebeaker.client.session_types import SessionInfo, SessionState
from codebeaker.client.types import (
    ExecutionOptions,
    ExecutionResult,
    Finished,
    Limits,
    OperationState,
    Packages,
    Runtime,
    Source,
    StreamEvent,
)
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc


class _AsyncStreamCall(Protocol):
    """The part of grpc.aio's response-stream call object this module uses."""

    async def read(self) -> object: ...

    def cancel(self) -> bool: ...


class AsyncExecutionStream(AsyncIterator[StreamEvent]):
    """Events of one streamed execution: `Started`, `Output`/`StageFinished`..., `Finished`.

    `async for` over it, or use it as an async context manager: leaving the
    block, `aclose()`/`cancel()` before `Finished`, or cancelling the task that
    awaits it cancels the RPC. RPC failures raise `CodeBeakerError`s.
    """

    def __init__(self, call: _AsyncStreamCall, span: CallSpan) -> None:
        self._call = call
        self._span = span
        self._closed = False
        self._exhausted = False
        self._result: ExecutionResult | None = None

    @property
    def result(self) -> ExecutionResult | None:
        """The verdict, once the `Finished` event has been read."""
        return self._result

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> StreamEvent:
        while not (self._exhausted or self._closed):
            try:
                with translate_rpc_errors():
                    message = await self._call.read()
            except CodeBeakerError as error:
                self._exhausted = True
                if self._closed:
                    break  # the failure is the cancellation we asked for
                self._span.end(error)
                raise
            except asyncio.CancelledError:
                if self._closed and not _task_is_being_cancelled():
                    break  # grpc.aio reports our own cancel() this way
                self.cancel()
                raise
            if not isinstance(message, pb.ExecuteStreamResponse):  # grpc.aio.EOF
                self._exhausted = True
                if self._result is None:
                    broken = ServiceError("the stream ended without a result")
                    self._span.end(broken)
                    raise broken
                break
            event = event_from_proto(message)
            if isinstance(event, Finished):
                self._result = event.result
                self._span.result(event.result)
                self._span.end()
            if event is not None:
                return event
        raise StopAsyncIteration

    def cancel(self) -> None:
        """Stop the execution if it is still running."""
        # Once the verdict is in, the server is done: nothing left to stop.
        if not (self._closed or self._exhausted or self._result is not None):
            self._closed = True
            self._call.cancel()
        self._closed = True
        self._span.end()

    async def aclose(self) -> None:
        """Same as `cancel()`; lets `contextlib.aclosing` and friends work."""
        self.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class AsyncClient:
    """asyncio CodeBeaker client over one grpc.aio channel.

    Create it inside a running event loop. `address` defaults to
    `$CODEBEAKER_ADDRESS`, else 127.0.0.1:50051. `timeout` (seconds) is the
    deadline of each call that does not pass its own; None means no deadline.
    Use as an async context manager, or `await close()`.

    The connection arguments are `Client`'s (`tls`, `ca`, `cert`, `key`,
    `credentials`, `metadata`, `token`); `channel=` takes a ready
    `grpc.aio.Channel`, which `close()` then leaves open.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        options: ChannelOptions | None = None,
        tls: bool = False,
        ca: PemSource | None = None,
        cert: PemSource | None = None,
        key: PemSource | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._connection = connection(
            address,
            tls=tls,
            ca=ca,
            cert=cert,
            key=key,
            credentials=credentials,
            metadata=metadata,
            token=token,
            options=options,
            own_channel=channel is None,
        )
        self.address = self._connection.address
        self.timeout = timeout
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else self._connection.open_aio()
        self._stub = pb_grpc.ExecutionServiceStub(self._channel)
        self._operations = AsyncOperationCalls(
            self._channel, self._connection, lambda: self.timeout
        )
        self._sessions = AsyncSessionCalls(self._channel, self._connection, lambda: self.timeout)

    async def execute(
        self,
        language: str,
        source: Source | None = None,
        *,
        # A gRPC deadline travels to the server, which asyncio.timeout cannot do.
        timeout: float | None = None,  # noqa: ASYNC109
        **options: Unpack[ExecutionOptions],
    ) -> ExecutionResult:
        """Run a program to completion and return its verdict and buffered output.

        `options` describe the program (`ExecutionOptions`: files, entrypoint,
        stdin, args, env, limits, compile_limits, output_files, test_cases,
        version, request_id, packages); `timeout` is this call's deadline in seconds.
        """
        spec = build_spec(language, source, **options)
        # Cancelling the awaiting task cancels the grpc.aio call with it.
        with traced_call("Execute", self.address) as call:
            with translate_rpc_errors():
                response: pb.ExecuteResponse = await self._stub.Execute(
                    pb.ExecuteRequest(spec=spec),
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(call.metadata),
                )
            result = result_from_proto(response.result)
            call.result(result)
        return result

    def stream(
        self,
        language: str,
        source: Source | None = None,
        *,
        timeout: float | None = None,
        **options: Unpack[ExecutionOptions],
    ) -> AsyncExecutionStream:
        """Run a program, yielding its output as it is produced, then the verdict.

        Takes the same `options` as `execute`. Output events say which stage
        (compile or run) and test case wrote them; a `StageFinished` event
        follows the compile and each test case.

        Not a coroutine: `async for event in client.stream(...)` directly.
        """
        spec = build_spec(language, source, **options)
        span = CallSpan("ExecuteStream", self.address)
        try:
            with translate_rpc_errors():
                call: _AsyncStreamCall = self._stub.ExecuteStream(
                    pb.ExecuteStreamRequest(spec=spec),
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(span.metadata),
                )
        except BaseException as error:
            span.end(error)
            raise
        return AsyncExecutionStream(call, span)

    async def submit(
        self,
        language: str,
        source: Source | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
        **options: Unpack[ExecutionOptions],
    ) -> AsyncOperation:
        """Queue a program on the server and return at once with its `AsyncOperation`.

        As `Client.submit`: the same `options` as `execute`, and `request_id` is
        also the idempotency key. `await op.wait()` returns what `execute` would.
        """
        spec = build_spec(language, source, **options)
        request = pb.SubmitExecutionRequest(spec=spec, request_id=spec.request_id)
        with traced_call("SubmitExecution", self.address) as call:
            with translate_rpc_errors():
                message = await self._stub.SubmitExecution(
                    request,
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(call.metadata),
                )
            snapshot = snapshot_from_proto(message)
            call.operation(snapshot.name, snapshot.state.value)
        return AsyncOperation(snapshot, self._operations)

    async def get_operation(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncOperation:
        """The operation called `name` (`operations/ID`, or the ID alone), as it is now;
        `NotFoundError` when there is none (or not the caller's)."""
        snapshot = await self._operations.get(operation_name(name), timeout)
        return AsyncOperation(snapshot, self._operations)

    def list_operations(
        self,
        *,
        state: OperationState | str | None = None,
        done: bool | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> AsyncIterator[AsyncOperation]:
        """The caller's operations, newest first, in `state` and/or (not) `done`.

        Not a coroutine: `async for op in client.list_operations(...)`; pages of
        `page_size` are fetched as the iteration reaches them.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        return iterate_operations(self._operations, list_filter(state, done), page_size, timeout)

    async def create_session(
        self,
        language: str,
        *,
        version: str | None = None,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        idle_timeout: float | None = None,
        lifetime: float | None = None,
        disk_bytes: int | None = None,
        cpus: float | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        packages: Packages = (),
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncSession:
        """Start a session (the arguments of `Client.create_session`)."""
        request = create_request(
            language,
            version=version,
            limits=limits,
            env=env,
            labels=labels,
            idle_timeout=idle_timeout,
            lifetime=lifetime,
            disk_bytes=disk_bytes,
            cpus=cpus,
            session_id=session_id,
            request_id=request_id,
            packages=packages,
        )
        stub = self._sessions.stub
        message = await self._sessions.unary("CreateSession", stub.CreateSession, request, timeout)
        return AsyncSession(info_from_proto(message), self._sessions)

    async def get_session(
        self,
        name: str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncSession:
        """The session called `name` (`sessions/ID`, or the ID alone), as it is now;
        `NotFoundError` when there is none (or not the caller's)."""
        info = await self._sessions.get(session_name(name), timeout)
        return AsyncSession(info, self._sessions)

    def list_sessions(
        self,
        *,
        states: Iterable[SessionState | str] | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> AsyncIterator[SessionInfo]:
        """The caller's sessions (see `Client.list_sessions`).

        Not a coroutine: `async for info in client.list_sessions(...)`.
        """
        first = list_request(states, labels, page_size, "")
        return iterate_sessions(self._sessions, first, timeout)

    def watch_sessions(
        self,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        usage_interval: float | None = None,
        usage: bool = True,
        timeout: float | None = None,
    ) -> AsyncSessionWatch:
        """Sessions' events as they happen (see `Client.watch_sessions`); endless:
        `async for` it inside `async with`, or `aclose()` it."""
        request = watch_request(name, labels, usage_interval, usage)
        return self._sessions.watch(request, timeout)

    async def runtimes(self, *, timeout: float | None = None) -> list[Runtime]:  # noqa: ASYNC109
        """The languages the server can run."""
        with traced_call("ListRuntimes", self.address) as call, translate_rpc_errors():
            response: pb.ListRuntimesResponse = await self._stub.ListRuntimes(
                pb.ListRuntimesRequest(),
                timeout=deadline(timeout, self.timeout),
                metadata=self._connection.with_call(call.metadata),
            )
        return runtimes_from_proto(response)

    async def close(self) -> None:
        """Close the channel (RPCs still running on it are cancelled), unless the
        caller passed it as `channel=`: the caller closes what it made."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient(address={self.address!r}, timeout={self.timeout!r})"


def _task_is_being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
