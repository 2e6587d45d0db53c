"""`AsyncSession`: the asyncio handle of a stateful sandbox, and the SessionService
calls behind it (grpc.aio).

The twin of `codebeaker.client.session`: the same names and semantics, with
coroutines (`async with session:` deletes it at the end of the block). The
conversions are the blocking SDK's (`_session_convert`); its streams are in
`aio_exec_stream`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from types import TracebackType
from typing import Self, TypeVar

from grpc import aio

from codebeaker.client._channel import Connection
from codebeaker.client._convert import files_from_proto
from codebeaker.client._session_convert import (
    Argv,
    cell_result,
    cell_start,
    exec_info_from_proto,
    exec_start,
    files_from_listing,
    files_to_proto,
    info_from_proto,
    paths_list,
)
from codebeaker.client._settings import deadline
from codebeaker.client._tracing import SESSION_SERVICE, CallSpan, traced_call
from codebeaker.client.aio_exec_stream import (
    AsyncExecRequests,
    AsyncExecStream,
    AsyncInteractiveExec,
    AsyncResponseCall,
    AsyncSessionWatch,
)
from codebeaker.client.errors import NotFoundError, translate_rpc_errors
from codebeaker.client.session_types import (
    CellResult,
    ExecDisplay,
    ExecInfo,
    ExecResult,
    FileList,
    FilesWritten,
    SessionInfo,
)
from codebeaker.client.types import Limits, OutputFile
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")
_UnaryRpc = aio.UnaryUnaryMultiCallable


class AsyncSessionCalls:
    """The SessionService RPCs over one async client's channel, with its metadata and deadline."""

    def __init__(
        self,
        channel: aio.Channel,
        connection: Connection,
        default_timeout: Callable[[], float | None],
    ) -> None:
        self._stub = spb_grpc.SessionServiceStub(channel)
        self._connection = connection
        self._default_timeout = default_timeout

    @property
    def stub(self) -> spb_grpc.SessionServiceAsyncStub:
        return self._stub

    async def unary(
        self,
        method: str,
        rpc: _UnaryRpc[_Request, _Response],
        request: _Request,
        timeout: float | None,  # noqa: ASYNC109
        session: str = "",
    ) -> _Response:
        """One unary call, traced, its failure an SDK error; cancelling the task cancels it."""
        address = self._connection.address
        with traced_call(method, address, SESSION_SERVICE) as span, translate_rpc_errors():
            if session:
                span.session(session)
            return await rpc(
                request,
                timeout=deadline(timeout, self._default_timeout()),
                metadata=self._connection.with_call(span.metadata),
            )

    async def get(self, name: str, timeout: float | None) -> SessionInfo:  # noqa: ASYNC109
        request = spb.GetSessionRequest(name=name)
        message = await self.unary("GetSession", self._stub.GetSession, request, timeout)
        return info_from_proto(message)

    def _open(
        self, method: str, session: str, timeout: float | None
    ) -> tuple[CallSpan, float | None, tuple[tuple[str, str], ...]]:
        span = CallSpan(method, self._connection.address, SESSION_SERVICE)
        if session:
            span.session(session)
        metadata = self._connection.with_call(span.metadata)
        return span, deadline(timeout, self._default_timeout()), metadata

    def exec(self, first: spb.ExecRequest, timeout: float | None) -> AsyncExecStream:
        span, seconds, metadata = self._open("Exec", first.start.session, timeout)
        requests = AsyncExecRequests(first)
        try:
            with translate_rpc_errors():
                call: AsyncResponseCall = self._stub.Exec(
                    requests.messages(), timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            requests.end()
            span.end(error)
            raise
        return AsyncExecStream(call, span, requests)

    def attach(
        self, name: str, exec_id: str, from_sequence: int, timeout: float | None
    ) -> AsyncExecStream:
        span, seconds, metadata = self._open("AttachExec", name, timeout)
        request = spb.AttachExecRequest(name=name, exec_id=exec_id, from_sequence=from_sequence)
        try:
            with translate_rpc_errors():
                call: AsyncResponseCall = self._stub.AttachExec(
                    request, timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            span.end(error)
            raise
        span.exec_started(exec_id)
        return AsyncExecStream(call, span)

    def watch(self, request: spb.WatchSessionsRequest, timeout: float | None) -> AsyncSessionWatch:
        span, seconds, metadata = self._open("WatchSessions", request.name, timeout)
        try:
            with translate_rpc_errors():
                call: AsyncResponseCall = self._stub.WatchSessions(
                    request, timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            span.end(error)
            raise
        return AsyncSessionWatch(call, span)


class AsyncSession:
    """A session on the server: `Session`'s asyncio twin.

    `name`, `id` and `info` are what the server said at the last call that
    returned the session; the calls are coroutines, except `exec_stream`,
    `interactive` and `attach`, which return their stream at once (`async for`
    it). `async with session:` deletes it when the block ends.
    """

    def __init__(self, info: SessionInfo, calls: AsyncSessionCalls) -> None:
        self._info = info
        self._calls = calls

    @property
    def name(self) -> str:
        """`sessions/{id}`: enough to find it again from anywhere."""
        return self._info.name

    @property
    def id(self) -> str:
        return self._info.id

    @property
    def info(self) -> SessionInfo:
        return self._info

    async def refresh(self, *, timeout: float | None = None) -> Self:  # noqa: ASYNC109
        """Ask the server for the session's state, usage and times now (GetSession)."""
        self._info = await self._calls.get(self.name, timeout)
        return self

    async def exec(
        self,
        argv: Argv,
        *,
        stdin: bytes | str = b"",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        limits: Limits | None = None,
        detached: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> ExecResult:
        """Run a command in the session to its end (see `Session.exec`)."""
        stream = self.exec_stream(
            argv, stdin=stdin, env=env, cwd=cwd, limits=limits, detached=detached, timeout=timeout
        )
        async with stream:
            return await stream.drain()

    async def run_code(
        self,
        code: str,
        *,
        limits: Limits | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> CellResult:
        """Run a code cell in the session's interpreter (see `Session.run_code`)."""
        stream = self.cell_stream(code, limits=limits, timeout=timeout)
        displays: list[ExecDisplay] = []
        async with stream:
            async for event in stream:
                if isinstance(event, ExecDisplay):
                    displays.append(event)
            return cell_result(await stream.drain(), displays)

    def cell_stream(
        self,
        code: str,
        *,
        limits: Limits | None = None,
        timeout: float | None = None,
    ) -> AsyncExecStream:
        """Run a code cell, yielding its events as they happen (see `Session.cell_stream`)."""
        return self._calls.exec(cell_start(self.name, code, limits), timeout)

    def exec_stream(
        self,
        argv: Argv,
        *,
        stdin: bytes | str = b"",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        limits: Limits | None = None,
        detached: bool = False,
        timeout: float | None = None,
    ) -> AsyncExecStream:
        """Run a command, yielding its events as they happen; `stdin` is sent and closed.

        Not a coroutine: `async for event in session.exec_stream(...)` directly.
        """
        start = exec_start(
            self.name,
            argv,
            stdin=stdin,
            close_stdin=True,
            env=env,
            cwd=cwd,
            limits=limits,
            detached=detached,
        )
        return self._calls.exec(start, timeout)

    def interactive(
        self,
        argv: Argv,
        *,
        stdin: bytes | str = b"",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        limits: Limits | None = None,
        detached: bool = False,
        timeout: float | None = None,
    ) -> AsyncInteractiveExec:
        """Start a command whose stdin stays open (see `Session.interactive`)."""
        start = exec_start(
            self.name, argv, stdin=stdin, env=env, cwd=cwd, limits=limits, detached=detached
        )
        return AsyncInteractiveExec(self._calls.exec(start, timeout))

    def attach(
        self, exec_id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> AsyncExecStream:
        """Follow an Exec of this session from `from_sequence` (0: all that is kept)."""
        if from_sequence < 0:
            raise ValueError("from_sequence must be >= 0")
        return self._calls.attach(self.name, exec_id, from_sequence, timeout)

    async def list_execs(self, *, timeout: float | None = None) -> list[ExecInfo]:  # noqa: ASYNC109
        """The Execs the session keeps a record of, oldest first."""
        request = spb.ListExecsRequest(name=self.name)
        response = await self._unary("ListExecs", self._calls.stub.ListExecs, request, timeout)
        return [exec_info_from_proto(info) for info in response.execs]

    async def write_files(
        self,
        files: Mapping[str, bytes | str],
        mode: int | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> FilesWritten:
        """Put files into the session (see `Session.write_files`)."""
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be permission bits (0 to 0o7777), not {mode!r}")
        request = spb.WriteFilesRequest(name=self.name, files=files_to_proto(files), mode=mode or 0)
        response = await self._unary("WriteFiles", self._calls.stub.WriteFiles, request, timeout)
        return FilesWritten(response.files_written, response.bytes_written)

    async def read_files(
        self,
        paths: Iterable[str] | str,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> list[OutputFile]:
        """Files of the session (see `Session.read_files`)."""
        request = spb.ReadFilesRequest(name=self.name, paths=paths_list(paths))
        response = await self._unary("ReadFiles", self._calls.stub.ReadFiles, request, timeout)
        return list(files_from_proto(response.files))

    async def list_files(self, path: str = "", *, timeout: float | None = None) -> FileList:  # noqa: ASYNC109
        """One directory's entries, sorted by name ("" is the working directory)."""
        request = spb.ListFilesRequest(name=self.name, path=path)
        response = await self._unary("ListFiles", self._calls.stub.ListFiles, request, timeout)
        return files_from_listing(response)

    async def pause(self, *, timeout: float | None = None) -> Self:  # noqa: ASYNC109
        """Freeze the session: no CPU while paused; memory and files kept."""
        request = spb.PauseSessionRequest(name=self.name)
        rpc = self._calls.stub.PauseSession
        self._info = info_from_proto(await self._unary("PauseSession", rpc, request, timeout))
        return self

    async def resume(self, *, timeout: float | None = None) -> Self:  # noqa: ASYNC109
        """Thaw a paused session."""
        request = spb.ResumeSessionRequest(name=self.name)
        rpc = self._calls.stub.ResumeSession
        self._info = info_from_proto(await self._unary("ResumeSession", rpc, request, timeout))
        return self

    async def delete(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Kill and remove the session, whatever its state; NOT_FOUND from then on."""
        request = spb.DeleteSessionRequest(name=self.name)
        await self._unary("DeleteSession", self._calls.stub.DeleteSession, request, timeout)

    async def _unary(
        self,
        method: str,
        rpc: _UnaryRpc[_Request, _Response],
        request: _Request,
        timeout: float | None,  # noqa: ASYNC109
    ) -> _Response:
        return await self._calls.unary(method, rpc, request, timeout, self.name)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.delete()
        except NotFoundError:
            pass  # gone already
        except Exception as error:
            if exc is None:
                raise
            exc.add_note(f"and deleting {self.name} failed: {error}")

    def __repr__(self) -> str:
        return f"AsyncSession(name={self.name!r}, state={self._info.state.value})"


async def iterate_sessions(
    calls: AsyncSessionCalls,
    first: spb.ListSessionsRequest,
    timeout: float | None,  # noqa: ASYNC109
) -> AsyncIterator[SessionInfo]:
    """Every session the request selects, page after page."""
    request = first
    while True:
        page = await calls.unary("ListSessions", calls.stub.ListSessions, request, timeout)
        for message in page.sessions:
            yield info_from_proto(message)
        if not page.next_page_token:
            return
        request = spb.ListSessionsRequest()
        request.CopyFrom(first)
        request.page_token = page.next_page_token
