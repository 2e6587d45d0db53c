"""The blocking SDK's streams of a session: an Exec's events, an interactive Exec,
and `watch_sessions`' events.

An Exec is one bidirectional call. Its requests come from a queue the
caller's thread fills (`write`, `close_stdin`, `signal`) and grpc's own thread
drains, so a caller never blocks on the network to send stdin; its responses
are read by whoever iterates. The stream's reading (events, the collected
output, the result) is `_session_convert.ExecReader`'s, shared with asyncio.
Closing a stream before its result cancels the call: the server stops a
non-detached Exec; a detached one goes on (follow it with `Session.attach`).
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol, Self, TypeVar

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

_Message = TypeVar("_Message", covariant=True)


class ResponseCall(Protocol[_Message]):
    """The part of grpc's response-stream call objects this module uses."""

    def __next__(self) -> _Message: ...

    def cancel(self) -> bool: ...


class ExecRequests:
    """An Exec's request stream: messages queued by the caller, sent by grpc's thread.

    Iterating blocks until a message is queued; `end()` finishes the stream
    (grpc then half-closes the call), also unblocking grpc's thread when the
    call is over.
    """

    def __init__(self, first: spb.ExecRequest) -> None:
        self._queue: queue.SimpleQueue[spb.ExecRequest | None] = queue.SimpleQueue()
        self._queue.put(first)
        self._ended = False

    def __iter__(self) -> Iterator[spb.ExecRequest]:
        while (message := self._queue.get()) is not None:
            yield message

    def send(self, message: spb.ExecRequest) -> None:
        if self._ended:
            raise ValueError("the Exec is over: nothing more can be sent to it")
        self._queue.put(message)

    def end(self) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put(None)


class ExecStream(Iterator[ExecEvent]):
    """Events of one Exec: `ExecStarted`, `ExecOutput`/`ExecDisplay`..., `ExecFinished`.

    Iterate it, or use it as a context manager: leaving the block, `close()` or
    `cancel()` before `ExecFinished` cancels the call (the server stops the
    Exec unless it is detached). RPC failures raise `CodeBeakerError`s.
    """

    def __init__(
        self,
        call: ResponseCall[spb.ExecResponse],
        span: CallSpan,
        requests: ExecRequests | None = None,
        reader: ExecReader | None = None,
    ) -> None:
        self._call = call
        self._span = span
        self._requests = requests
        self._reader = reader or ExecReader()
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

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ExecEvent:
        while not (self._exhausted or self._closed):
            try:
                with translate_rpc_errors():
                    message = next(self._call)
            except StopIteration:
                self._over()
                if self.result is None:
                    broken = ServiceError("the Exec's stream ended without a result")
                    self._span.end(broken)
                    raise broken from None
                break
            except CodeBeakerError as error:
                self._over()
                if self._closed:
                    break  # the failure is the cancellation we asked for
                self._span.end(error)
                raise
            except BaseException:
                # Interrupted while waiting (Ctrl-C, ...): don't leave the Exec running.
                self.cancel()
                raise
            event = self._reader.read(message)
            if isinstance(event, ExecStarted):
                self._span.exec_started(event.exec_id)
            elif isinstance(event, ExecFinished):
                self._finished(event.result)
            if event is not None:
                return event
        raise StopIteration

    def drain(self) -> ExecResult:
        """Read every event left; the verdict (ServiceError if the stream was closed)."""
        for _ in self:
            pass
        if self.result is None:
            raise ServiceError("the Exec's stream was closed before its result")
        return self.result

    def send(self, message: spb.ExecRequest) -> None:
        if self._requests is None:
            raise ValueError("this stream only follows an Exec: nothing can be sent to it")
        self._requests.send(message)

    def cancel(self) -> None:
        """Stop following the Exec (and stop it, unless detached); safe from any thread."""
        if not (self._closed or self._exhausted or self.result is not None):
            self._closed = True
            self._call.cancel()
        self._closed = True
        self._over()
        self._span.end()

    def close(self) -> None:
        """Same as `cancel()`; lets `contextlib.closing` and friends work."""
        self.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()

    def _finished(self, result: ExecResult) -> None:
        self._span.result(result)
        self._span.end()
        if self._requests is not None:
            self._requests.end()

    def _over(self) -> None:
        self._exhausted = True
        if self._requests is not None:
            self._requests.end()


class InteractiveExec(Iterator[ExecEvent]):
    """A running Exec the caller talks to: stdin in, events out (`Session.interactive`).

    `write()` sends stdin as it comes, `close_stdin()` sends EOF, `signal(n)`
    signals the command's process group; iterate for its events, or call
    `result()` to read them all and get the verdict (with the output collected).
    Leaving the `with` block or `close()` before the result cancels the Exec.
    """

    def __init__(self, stream: ExecStream) -> None:
        self._stream = stream

    @property
    def exec_id(self) -> str:
        """The Exec's id, once its `ExecStarted` event has been read ("" before)."""
        return self._stream.exec_id

    def write(self, data: bytes | str) -> None:
        """Send `data` (text as UTF-8) to the command's stdin."""
        if data:
            self._stream.send(stdin_request(data))

    def close_stdin(self) -> None:
        """Close the command's stdin: it reads EOF once what was written is read."""
        self._stream.send(close_stdin_request())

    def signal(self, number: int) -> None:
        """Send signal `number` (e.g. `signal.SIGINT`) to the command's process group."""
        self._stream.send(signal_request(int(number)))

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> ExecEvent:
        return next(self._stream)

    def result(self) -> ExecResult:
        """Read the events left and return the verdict."""
        return self._stream.drain()

    def close(self) -> None:
        """Stop following the Exec (and stop it, unless detached)."""
        self._stream.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SessionWatch(Iterator[SessionEvent]):
    """`watch_sessions`' events as they happen; endless until `close()` (or the block ends)."""

    def __init__(self, call: ResponseCall[spb.SessionEvent], span: CallSpan) -> None:
        self._call = call
        self._span = span
        self._closed = False

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> SessionEvent:
        if self._closed:
            raise StopIteration
        try:
            with translate_rpc_errors():
                message = next(self._call)
        except StopIteration:
            self._closed = True
            self._span.end()
            raise
        except CodeBeakerError as error:
            if self._closed:
                raise StopIteration from None  # our own cancel
            self._closed = True
            self._span.end(error)
            raise
        except BaseException:
            self.close()
            raise
        return session_event_from_proto(message)

    def close(self) -> None:
        """End the watch (cancels the call); safe from any thread."""
        if not self._closed:
            self._closed = True
            self._call.cancel()
        self._span.end()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
