"""The asyncio SDK's streams of a session: an Exec's events, an interactive Exec,
and `watch_sessions`' events (grpc.aio).

The twin of `exec_stream`: the same names and semantics, with coroutines. An
Exec's requests are an async generator fed by a queue (`write`,
`close_stdin`, `signal`), which grpc.aio consumes in a task of its own.
Cancelling the task that awaits an event, `aclose()` or leaving `async with`
before the result cancels the call: the server stops a non-detached Exec.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

from codebeaker.client._session_convert import (
    ExecReader,
    close_stdin_request,
    session_event_from_proto,
    signal_request,
    stdin_request,
)
from codebeaker.client._tracing import CallSpan
from codebeaker.client.errors import CodeBeakerError, ServiceError, translate_rpc_errors
from codebeaker.client.session_types import (
    ExecEvent,
    ExecFinished,
    ExecResult,
    ExecStarted,
    SessionEvent,
)
from codebeaker.v1 import session_pb2 as spb


class AsyncResponseCall(Protocol):
    """The part of grpc.aio's response-stream call objects this module uses."""

    async def read(self) -> object: ...

    def cancel(self) -> bool: ...


class AsyncExecRequests:
    """An Exec's request stream: messages queued by the caller, sent by grpc.aio's task."""

    def __init__(self, first: spb.ExecRequest) -> None:
        self._queue: asyncio.Queue[spb.ExecRequest | None] = asyncio.Queue()
        self._queue.put_nowait(first)
        self._ended = False

    async def messages(self) -> AsyncIterator[spb.ExecRequest]:
        while (message := await self._queue.get()) is not None:
            yield message

    def send(self, message: spb.ExecRequest) -> None:
        if self._ended:
            raise ValueError("the Exec is over: nothing more can be sent to it")
        self._queue.put_nowait(message)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)


class AsyncExecStream(AsyncIterator[ExecEvent]):
    """Events of one Exec: `ExecStarted`, `ExecOutput`/`ExecDisplay`..., `ExecFinished`.

    `async for` over it, or use it as an async context manager: leaving the
    block, `aclose()`/`cancel()` before `ExecFinished`, or cancelling the task
    that awaits it cancels the call. RPC failures raise `CodeBeakerError`s.
    """

    def __init__(
        self,
        call: AsyncResponseCall,
        span: CallSpan,
        requests: AsyncExecRequests | None = None,
    ) -> None:
        self._call = call
        self._span = span
        self._requests = requests
        self._reader = ExecReader()
        self._closed = False
        self._exhausted = False

    @property
    def exec_id(self) -> str:
        """The Exec's id, once `ExecStarted` has been read ("" before)."""
        return self._reader.exec_id

    @property
    def result(self) -> ExecResult | None:
        """The verdict, once `ExecFinished` has been read."""
        return self._reader.result

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ExecEvent:
        while not (self._exhausted or self._closed):
            try:
                with translate_rpc_errors():
                    message = await self._call.read()
            except CodeBeakerError as error:
                self._over()
                if self._closed:
                    break  # the failure is the cancellation we asked for
                self._span.end(error)
                raise
            except asyncio.CancelledError:
                if self._closed and not _task_is_being_cancelled():
                    break  # grpc.aio reports our own cancel() this way
                self.cancel()
                raise
            if not isinstance(message, spb.ExecResponse):  # grpc.aio.EOF
                self._over()
                if self.result is None:
                    broken = ServiceError("the Exec's stream ended without a result")
                    self._span.end(broken)
                    raise broken
                break
            event = self._reader.read(message)
            if isinstance(event, ExecStarted):
                self._span.exec_started(event.exec_id)
            elif isinstance(event, ExecFinished):
                self._span.result(event.result)
                self._span.end()
                if self._requests is not None:
                    self._requests.end()
            if event is not None:
                return event
        raise StopAsyncIteration

    async def drain(self) -> ExecResult:
        """Read every event left; the verdict (ServiceError if the stream was closed)."""
        async for _ in self:
            pass
        if self.result is None:
            raise ServiceError("the Exec's stream was closed before its result")
        return self.result

    def send(self, message: spb.ExecRequest) -> None:
        if self._requests is None:
            raise ValueError("this stream only follows an Exec: nothing can be sent to it")
        self._requests.send(message)

    def cancel(self) -> None:
        """Stop following the Exec (and stop it, unless detached)."""
        if not (self._closed or self._exhausted or self.result is not None):
            self._closed = True
            self._call.cancel()
        self._closed = True
        self._over()
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

    def _over(self) -> None:
        self._exhausted = True
        if self._requests is not None:
            self._requests.end()


class AsyncInteractiveExec(AsyncIterator[ExecEvent]):
    """A running Exec the caller talks to (`AsyncSession.interactive`): `InteractiveExec`'s
    asyncio twin (`await write()`, `await close_stdin()`, `await signal()`,
    `async for` its events, `await result()`, `async with` / `aclose()`)."""

    def __init__(self, stream: AsyncExecStream) -> None:
        self._stream = stream

    @property
    def exec_id(self) -> str:
        return self._stream.exec_id

    async def write(self, data: bytes | str) -> None:
        """Send `data` (text as UTF-8) to the command's stdin."""
        if data:
            self._stream.send(stdin_request(data))

    async def close_stdin(self) -> None:
        """Close the command's stdin: it reads EOF once what was written is read."""
        self._stream.send(close_stdin_request())

    async def signal(self, number: int) -> None:
        """Send signal `number` to the command's process group."""
        self._stream.send(signal_request(int(number)))

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> ExecEvent:
        return await self._stream.__anext__()

    async def result(self) -> ExecResult:
        """Read the events left and return the verdict."""
        return await self._stream.drain()

    async def aclose(self) -> None:
        """Stop following the Exec (and stop it, unless detached)."""
        self._stream.cancel()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stream.cancel()


class AsyncSessionWatch(AsyncIterator[SessionEvent]):
    """`watch_sessions`' events as they happen; endless until `aclose()` (or the block ends)."""

    def __init__(self, call: AsyncResponseCall, span: CallSpan) -> None:
        self._call = call
        self._span = span
        self._closed = False

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionEvent:
        if self._closed:
            raise StopAsyncIteration
        try:
            with translate_rpc_errors():
                message = await self._call.read()
        except CodeBeakerError as error:
            if self._closed:
                raise StopAsyncIteration from None
            self._closed = True
            self._span.end(error)
            raise
        except asyncio.CancelledError:
            if self._closed and not _task_is_being_cancelled():
                raise StopAsyncIteration from None
            self.cancel()
            raise
        if not isinstance(message, spb.SessionEvent):  # grpc.aio.EOF
            self._closed = True
            self._span.end()
            raise StopAsyncIteration
        return session_event_from_proto(message)

    def cancel(self) -> None:
        """End the watch (cancels the call)."""
        if not self._closed:
            self._closed = True
            self._call.cancel()
        self._span.end()

    async def aclose(self) -> None:
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


def _task_is_being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
