"""`Session`: the blocking handle of a stateful sandbox, and the SessionService calls behind it.

`Client.create_session` starts a session and returns its handle;
`Client.get_session` finds one by name. The session lives on the server, not
in this object: dropping the handle leaves it running until its idle timeout
or lifetime (as a context manager, leaving the block deletes it). Its Execs
are the streams of `exec_stream`; requests and answers go through
`_session_convert`, failures through `errors.translate_rpc_errors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import Self, TypeVar

import grpc

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
from codebeaker.client.errors import NotFoundError, translate_rpc_errors
from codebeaker.client.exec_stream import (
    ExecRequests,
    ExecStream,
    InteractiveExec,
    ResponseCall,
    SessionWatch,
)
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


class SessionCalls:
    """The SessionService RPCs over one client's channel, with its metadata and deadline."""

    def __init__(
        self,
        channel: grpc.Channel,
        connection: Connection,
        default_timeout: Callable[[], float | None],
    ) -> None:
        self._stub = spb_grpc.SessionServiceStub(channel)
        self._connection = connection
        self._default_timeout = default_timeout

    @property
    def stub(self) -> spb_grpc.SessionServiceStub:
        return self._stub

    def unary(
        self,
        method: str,
        rpc: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: float | None,
        session: str = "",
    ) -> _Response:
        """One unary call, traced, its failure an SDK error; Ctrl-C cancels it."""
        address = self._connection.address
        with traced_call(method, address, SESSION_SERVICE) as span, translate_rpc_errors():
            if session:
                span.session(session)
            future = rpc.future(
                request,
                timeout=deadline(timeout, self._default_timeout()),
                metadata=self._connection.with_call(span.metadata),
            )
            try:
                return future.result()
            except BaseException:
                future.cancel()
                raise

    def get(self, name: str, timeout: float | None) -> SessionInfo:
        request = spb.GetSessionRequest(name=name)
        return info_from_proto(self.unary("GetSession", self._stub.GetSession, request, timeout))

    def open_stream(
        self, method: str, session: str, timeout: float | None
    ) -> tuple[CallSpan, float | None, tuple[tuple[str, str], ...]]:
        """The span, deadline and metadata of a streaming call about to start."""
        span = CallSpan(method, self._connection.address, SESSION_SERVICE)
        if session:
            span.session(session)
        metadata = self._connection.with_call(span.metadata)
        return span, deadline(timeout, self._default_timeout()), metadata

    def exec(self, first: spb.ExecRequest, timeout: float | None) -> ExecStream:
        span, seconds, metadata = self.open_stream("Exec", first.start.session, timeout)
        requests = ExecRequests(first)
        try:
            with translate_rpc_errors():
                call: ResponseCall[spb.ExecResponse] = self._stub.Exec(
                    iter(requests), timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            requests.end()
            span.end(error)
            raise
        return ExecStream(call, span, requests)

    def attach(
        self, name: str, exec_id: str, from_sequence: int, timeout: float | None
    ) -> ExecStream:
        span, seconds, metadata = self.open_stream("AttachExec", name, timeout)
        request = spb.AttachExecRequest(name=name, exec_id=exec_id, from_sequence=from_sequence)
        try:
            with translate_rpc_errors():
                call: ResponseCall[spb.ExecResponse] = self._stub.AttachExec(
                    request, timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            span.end(error)
            raise
        span.exec_started(exec_id)
        return ExecStream(call, span)

    def watch(self, request: spb.WatchSessionsRequest, timeout: float | None) -> SessionWatch:
        span, seconds, metadata = self.open_stream("WatchSessions", request.name, timeout)
        try:
            with translate_rpc_errors():
                call: ResponseCall[spb.SessionEvent] = self._stub.WatchSessions(
                    request, timeout=seconds, metadata=metadata
                )
        except BaseException as error:
            span.end(error)
            raise
        return SessionWatch(call, span)


class Session:
    """A session on the server: a sandbox whose files and processes last from call to call.

    `info` is what the server said at the last call that returned the session
    (`create_session`, `get_session`, `refresh`, `pause`, `resume`). Each
    method's `timeout` is that call's deadline (default: the client's). As a
    context manager, leaving the block deletes the session (one already gone
    is fine).
    """

    def __init__(self, info: SessionInfo, calls: SessionCalls) -> None:
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

    def refresh(self, *, timeout: float | None = None) -> Self:
        """Ask the server for the session's state, usage and times now (GetSession)."""
        self._info = self._calls.get(self.name, timeout)
        return self

    def exec(
        self,
        argv: Argv,
        *,
        stdin: bytes | str = b"",
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        limits: Limits | None = None,
        detached: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        """Run a command in the session to its end; its verdict and collected output.

        `argv` is the program and its arguments (looked up on PATH), or a str:
        a shell command line, run as `sh -c LINE`. `stdin` is all its input
        (then EOF); `env` is added to the session's; `cwd` is relative to the
        session's working directory; `limits` (wall_time, cpu_time,
        max_output_bytes) narrow the session's defaults for this Exec.
        """
        stream = self.exec_stream(
            argv, stdin=stdin, env=env, cwd=cwd, limits=limits, detached=detached, timeout=timeout
        )
        with stream:
            return stream.drain()

    def run_code(
        self, code: str, *, limits: Limits | None = None, timeout: float | None = None
    ) -> CellResult:
        """Run a code cell in the session's interpreter (Python, JavaScript), whose
        variables, imports and definitions persist from cell to cell: its verdict, output,
        and rich output (`.text` of the last value, `.html`, `.images`)."""
        stream = self.cell_stream(code, limits=limits, timeout=timeout)
        displays: list[ExecDisplay] = []
        with stream:
            for event in stream:
                if isinstance(event, ExecDisplay):
                    displays.append(event)
            return cell_result(stream.drain(), displays)

    def cell_stream(
        self, code: str, *, limits: Limits | None = None, timeout: float | None = None
    ) -> ExecStream:
        """Run a code cell, yielding its events as they happen (`run_code`'s arguments)."""
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
    ) -> ExecStream:
        """Run a command, yielding its events as they happen (`exec`'s arguments).

        `stdin` is sent and closed at once; for a conversation use `interactive`.
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
    ) -> InteractiveExec:
        """Start a command whose stdin stays open: `write()`, `close_stdin()`, `signal()`.

        `stdin` is sent first; the rest are `exec`'s arguments.
        """
        start = exec_start(
            self.name, argv, stdin=stdin, env=env, cwd=cwd, limits=limits, detached=detached
        )
        return InteractiveExec(self._calls.exec(start, timeout))

    def attach(
        self, exec_id: str, from_sequence: int = 0, *, timeout: float | None = None
    ) -> ExecStream:
        """Follow an Exec of this session: its retained events from `from_sequence`
        (0: all that are kept), then live until its result."""
        if from_sequence < 0:
            raise ValueError("from_sequence must be >= 0")
        return self._calls.attach(self.name, exec_id, from_sequence, timeout)

    def list_execs(self, *, timeout: float | None = None) -> list[ExecInfo]:
        """The Execs the session keeps a record of, oldest first."""
        request = spb.ListExecsRequest(name=self.name)
        response = self._unary("ListExecs", self._calls.stub.ListExecs, request, timeout)
        return [exec_info_from_proto(info) for info in response.execs]

    def write_files(
        self,
        files: Mapping[str, bytes | str],
        mode: int | None = None,
        *,
        timeout: float | None = None,
    ) -> FilesWritten:
        """Put files (path relative to the working directory → content, text as
        UTF-8) into the session, replacing what is there; `mode` is every file's
        permission bits (default 0o644)."""
        if mode is not None and not 0 <= mode <= 0o7777:
            raise ValueError(f"mode must be permission bits (0 to 0o7777), not {mode!r}")
        request = spb.WriteFilesRequest(name=self.name, files=files_to_proto(files), mode=mode or 0)
        response = self._unary("WriteFiles", self._calls.stub.WriteFiles, request, timeout)
        return FilesWritten(response.files_written, response.bytes_written)

    def read_files(
        self, paths: Iterable[str] | str, *, timeout: float | None = None
    ) -> list[OutputFile]:
        """Files of the session (paths or globs, as `output_files`): regular files
        only, never through a symlink, cut at the server's cap (`status` says)."""
        request = spb.ReadFilesRequest(name=self.name, paths=paths_list(paths))
        response = self._unary("ReadFiles", self._calls.stub.ReadFiles, request, timeout)
        return list(files_from_proto(response.files))

    def list_files(self, path: str = "", *, timeout: float | None = None) -> FileList:
        """One directory's entries, sorted by name ("" is the working directory)."""
        request = spb.ListFilesRequest(name=self.name, path=path)
        return files_from_listing(
            self._unary("ListFiles", self._calls.stub.ListFiles, request, timeout)
        )

    def pause(self, *, timeout: float | None = None) -> Self:
        """Freeze the session: no CPU while paused; memory and files kept."""
        request = spb.PauseSessionRequest(name=self.name)
        message = self._unary("PauseSession", self._calls.stub.PauseSession, request, timeout)
        self._info = info_from_proto(message)
        return self

    def resume(self, *, timeout: float | None = None) -> Self:
        """Thaw a paused session."""
        request = spb.ResumeSessionRequest(name=self.name)
        message = self._unary("ResumeSession", self._calls.stub.ResumeSession, request, timeout)
        self._info = info_from_proto(message)
        return self

    def delete(self, *, timeout: float | None = None) -> None:
        """Kill and remove the session, whatever its state; NOT_FOUND from then on."""
        request = spb.DeleteSessionRequest(name=self.name)
        self._unary("DeleteSession", self._calls.stub.DeleteSession, request, timeout)

    def _unary(
        self,
        method: str,
        rpc: grpc.UnaryUnaryMultiCallable[_Request, _Response],
        request: _Request,
        timeout: float | None,
    ) -> _Response:
        return self._calls.unary(method, rpc, request, timeout, self.name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.delete()
        except NotFoundError:
            pass  # gone already: deleted, expired, or never the caller's
        except Exception as error:
            if exc is None:
                raise
            # The block's own failure is the one to see; the leak is noted on it.
            exc.add_note(f"and deleting {self.name} failed: {error}")

    def __repr__(self) -> str:
        return f"Session(name={self.name!r}, state={self._info.state.value})"


def iterate_sessions(
    calls: SessionCalls, first: spb.ListSessionsRequest, timeout: float | None
) -> Iterator[SessionInfo]:
    """Every session the request selects, page after page."""
    request = first
    while True:
        page = calls.unary("ListSessions", calls.stub.ListSessions, request, timeout)
        for message in page.sessions:
            yield info_from_proto(message)
        if not page.next_page_token:
            return
        request = spb.ListSessionsRequest()
        request.CopyFrom(first)
        request.page_token = page.next_page_token
