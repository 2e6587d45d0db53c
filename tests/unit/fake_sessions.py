"""A fake SessionService with in-memory sessions, on a real grpc.aio server
(127.0.0.1, port 0), for testing the SDK's sessions and `codebeaker session`.

The server runs on an event loop of its own in a background thread, so the
blocking client, the asyncio client (on the test's loop) and a CLI subprocess
can all talk to it. It plays the contract, nothing more: sessions with states,
labels, paging and events; files in a dict; and Execs that really stream both
ways, run by a few pretend programs (`PROGRAMS`):

    upper         stdin back upper-cased as it arrives; exit 0 at EOF
    cat           stdin back as it is
    echo ARG...   the args, one line; exit 0
    fail          "boom" on stderr; exit 3
    env           the Exec's environment (session's + its own) and cwd, one per line
    display       a text/plain and an image/png display
    sleep         "tick", then waits for `release(exec_id)` (exit 0) or a signal
    write P TEXT  writes TEXT to session file P
    sh -c LINE    LINE split as words, run as the command it names

Any signal ends a program SIGNALED with it. An Exec whose caller goes away is
stopped (SIGKILL) unless detached. Unknown sessions are NOT_FOUND with the rich
status the real server attaches (ErrorInfo + ResourceInfo, server/errors.py).
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
import shlex
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import grpc
from google.protobuf import empty_pb2
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc

T = TypeVar("T")
Context = aio.ServicerContext[Any, Any]
PNG = b"\x89PNG\r\n\x1a\nfake"
LIVE = (spb.SESSION_STATE_CREATING, spb.SESSION_STATE_READY, spb.SESSION_STATE_BUSY,
        spb.SESSION_STATE_PAUSED)  # fmt: skip
_ID = re.compile(r"^[a-z][a-z0-9-]{3,62}$")
_EOF = object()


class Aborted(Exception):
    """Raised inside a handler to answer with a rich status (see `_rich`)."""

    def __init__(self, code: grpc.StatusCode, message: str, *details: Message) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


@dataclass
class FakeExec:
    exec_id: str
    start: spb.ExecStart
    events: list[spb.ExecResponse] = field(default_factory=list)
    inbox: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    state: spb.ExecState.ValueType = spb.EXEC_STATE_RUNNING
    result: pb.ExecutionResult | None = None
    released: asyncio.Event = field(default_factory=asyncio.Event)
    start_time: Timestamp = field(default_factory=Timestamp)
    end_time: Timestamp | None = None
    stdin_seen: list[bytes] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass
class FakeSessions:
    """The sessions and what the service was asked; the test reads these."""

    sessions: dict[str, spb.Session] = field(default_factory=dict)
    files: dict[str, dict[str, tuple[bytes, int]]] = field(default_factory=dict)
    execs: dict[str, dict[str, FakeExec]] = field(default_factory=dict)
    creates: list[spb.CreateSessionRequest] = field(default_factory=list)
    lists: list[spb.ListSessionsRequest] = field(default_factory=list)
    watches: list[spb.WatchSessionsRequest] = field(default_factory=list)
    starts: list[spb.ExecStart] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)  # Execs stopped as their caller left
    metadata: list[dict[str, str]] = field(default_factory=list)
    refusals: dict[str, Aborted] = field(default_factory=dict)  # method -> its next answer
    request_ids: dict[str, str] = field(default_factory=dict)  # CreateSession's, to names
    watchers: list[tuple[spb.WatchSessionsRequest, asyncio.Queue[spb.SessionEvent]]] = field(
        default_factory=list
    )
    changed: asyncio.Condition | None = None
    loop: asyncio.AbstractEventLoop | None = None
    clock: int = 1_700_000_000
    # Notified (from the loop) at every Exec event, stop and new watcher: see wait_for.
    poked: threading.Condition = field(default_factory=threading.Condition)

    # -- from the test's thread ------------------------------------------------

    def add(self, session_id: str, state: str = "READY", **labels: str) -> str:
        """A session made directly (not through CreateSession); its name."""
        request = spb.CreateSessionRequest(
            session=spb.Session(language="python", labels=labels), session_id=session_id
        )
        name = self.on_loop(self._create(request)).name
        if state != "READY":
            self.on_loop(self._set_state(name, spb.SessionState.Value(f"SESSION_STATE_{state}")))
        return name

    def release(self, name: str, exec_id: str) -> None:
        """Let a `sleep` Exec end with exit 0."""
        self.on_loop(self._release(name, exec_id))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        """Block the test's thread until `predicate()` holds of what the fake saw."""
        with self.poked:
            assert self.poked.wait_for(predicate, timeout), "the fake never saw it"

    def poke(self) -> None:
        with self.poked:
            self.poked.notify_all()

    def on_loop(self, work: Coroutine[Any, Any, T]) -> T:
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(timeout=10)

    # -- on the loop -----------------------------------------------------------

    def now(self) -> Timestamp:
        self.clock += 1
        return Timestamp(seconds=self.clock)

    async def _create(self, request: spb.CreateSessionRequest) -> spb.Session:
        session_id = request.session_id or f"s{uuid.uuid4().hex[:11]}"
        name = f"sessions/{session_id}"
        session = spb.Session()
        session.CopyFrom(request.session)
        session.name, session.state = name, spb.SESSION_STATE_READY
        if not session.version:
            session.version = "3.11"
        session.create_time.CopyFrom(self.now())
        session.update_time.CopyFrom(session.create_time)
        session.expire_time.FromSeconds(session.create_time.seconds + 3600)
        session.usage.memory_bytes = 1 << 20
        self.sessions[name] = session
        self.files[name], self.execs[name] = {}, {}
        await self.emit(spb.SESSION_EVENT_TYPE_CREATED, session)
        return session

    async def _set_state(
        self, name: str, state: spb.SessionState.ValueType, reason: str = ""
    ) -> spb.Session:
        session = self.sessions[name]
        previous = session.state
        session.state, session.state_reason = state, reason
        session.update_time.CopyFrom(self.now())
        await self.emit(spb.SESSION_EVENT_TYPE_STATE_CHANGED, session, previous, reason)
        return session

    async def _release(self, name: str, exec_id: str) -> None:
        self.execs[name][exec_id].released.set()

    async def emit(
        self,
        kind: spb.SessionEventType.ValueType,
        session: spb.Session,
        previous: spb.SessionState.ValueType = spb.SESSION_STATE_UNSPECIFIED,
        reason: str = "",
    ) -> None:
        event = spb.SessionEvent(
            type=kind, session=session, previous_state=previous, reason=reason, time=self.now()
        )
        for request, events in self.watchers:
            if _watched(request, session):
                events.put_nowait(event)

    async def notify(self) -> None:
        assert self.changed is not None
        async with self.changed:
            self.changed.notify_all()
        self.poke()


def _watched(request: spb.WatchSessionsRequest, session: spb.Session) -> bool:
    if request.name and request.name != session.name:
        return False
    return all(session.labels.get(k) == v for k, v in request.labels.items())


def not_found(name: str) -> Aborted:
    info = error_details_pb2.ErrorInfo(
        reason="NOT_FOUND", domain="codebeaker", metadata={"resource": name}
    )
    resource = error_details_pb2.ResourceInfo(resource_name=name)
    return Aborted(grpc.StatusCode.NOT_FOUND, f"no session {name}", info, resource)


def refused(code: grpc.StatusCode, message: str, reason: str, field_path: str = "") -> Aborted:
    """An error as the real server words it: ErrorInfo, and BadRequest naming a field."""
    details: list[Message] = [error_details_pb2.ErrorInfo(reason=reason, domain="codebeaker")]
    if field_path:
        bad = error_details_pb2.BadRequest()
        bad.field_violations.add(field=field_path, description=message)
        details.append(bad)
    return Aborted(code, message, *details)


async def _rich(context: Context, error: Aborted) -> None:
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    for detail in error.details:
        status.details.add().Pack(detail)
    encoded = rpc_status.to_status(status)
    await context.abort(error.code, error.message, tuple(encoded.trailing_metadata))


class _Service(spb_grpc.SessionServiceServicer):
    def __init__(self, fake: FakeSessions) -> None:
        self.fake = fake

    async def _admit(self, method: str, context: Context) -> None:
        self.fake.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        refusal = self.fake.refusals.pop(method, None)
        if refusal is not None:
            raise refusal

    def _session(self, name: str) -> spb.Session:
        session = self.fake.sessions.get(name)
        if session is None:
            raise not_found(name)
        return session

    async def CreateSession(self, request: spb.CreateSessionRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("CreateSession", context)
            self.fake.creates.append(request)
            if request.session.language not in ("python", "bash"):
                raise refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"unknown language {request.session.language!r}",
                    "LANGUAGE_UNKNOWN",
                    "session.language",
                )
            if request.session_id and not _ID.match(request.session_id):
                raise refused(
                    grpc.StatusCode.INVALID_ARGUMENT, "bad id", "VALUE_INVALID", "session_id"
                )
            earlier = self.fake.request_ids.get(request.request_id)
            if request.request_id and earlier in self.fake.sessions:
                return self.fake.sessions[earlier]
            if f"sessions/{request.session_id}" in self.fake.sessions:
                raise refused(grpc.StatusCode.ALREADY_EXISTS, "taken", "ALREADY_EXISTS")
            created = await self.fake._create(request)
            if request.request_id:
                self.fake.request_ids[request.request_id] = created.name
            return created

    async def GetSession(self, request: spb.GetSessionRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("GetSession", context)
            return self._session(request.name)

    async def ListSessions(self, request: spb.ListSessionsRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("ListSessions", context)
            self.fake.lists.append(request)
            states = set(request.states) or set(LIVE)
            chosen = [
                s
                for s in self.fake.sessions.values()
                if s.state in states
                and all(s.labels.get(k) == v for k, v in request.labels.items())
            ]
            start = int(request.page_token or 0)
            end = start + (request.page_size or 50)
            token = str(end) if end < len(chosen) else ""
            return spb.ListSessionsResponse(sessions=chosen[start:end], next_page_token=token)

    async def DeleteSession(self, request: spb.DeleteSessionRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("DeleteSession", context)
            session = self._session(request.name)
            for running in self.fake.execs[request.name].values():
                running.inbox.put_nowait(9)
            del self.fake.sessions[request.name]
            session.state, session.state_reason = spb.SESSION_STATE_TERMINATED, "deleted"
            await self.fake.emit(spb.SESSION_EVENT_TYPE_DELETED, session, reason="deleted")
            return empty_pb2.Empty()

    async def PauseSession(self, request: spb.PauseSessionRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("PauseSession", context)
            self._session(request.name)
            return await self.fake._set_state(request.name, spb.SESSION_STATE_PAUSED, "paused")

    async def ResumeSession(self, request: spb.ResumeSessionRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("ResumeSession", context)
            if self._session(request.name).state != spb.SESSION_STATE_PAUSED:
                raise refused(
                    grpc.StatusCode.FAILED_PRECONDITION, "not paused", "FAILED_PRECONDITION"
                )
            return await self.fake._set_state(request.name, spb.SESSION_STATE_READY)

    async def WriteFiles(self, request: spb.WriteFilesRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("WriteFiles", context)
            self._session(request.name)
            for index, file in enumerate(request.files):
                if file.path.startswith("/") or ".." in file.path.split("/"):
                    raise refused(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        "outside the working directory",
                        "PATH_INVALID",
                        f"files[{index}].path",
                    )
            for file in request.files:
                self.fake.files[request.name][file.path] = (file.content, request.mode or 0o644)
            written = sum(len(f.content) for f in request.files)
            return spb.WriteFilesResponse(files_written=len(request.files), bytes_written=written)

    async def ReadFiles(self, request: spb.ReadFilesRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("ReadFiles", context)
            self._session(request.name)
            files = self.fake.files[request.name]
            found: list[pb.OutputFile] = []
            for pattern in request.paths:
                matches = sorted(p for p in files if fnmatch.fnmatchcase(p, pattern))
                if not matches:
                    found.append(pb.OutputFile(path=pattern, status=pb.OUTPUT_FILE_STATUS_MISSING))
                for path in matches:
                    content = files[path][0]
                    found.append(
                        pb.OutputFile(
                            path=path,
                            status=pb.OUTPUT_FILE_STATUS_OK,
                            content=content,
                            size=len(content),
                        )
                    )
            return spb.ReadFilesResponse(files=found)

    async def ListFiles(self, request: spb.ListFilesRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("ListFiles", context)
            self._session(request.name)
            prefix = request.path.strip("/") + "/" if request.path.strip("/") else ""
            entries: dict[str, spb.FileEntry] = {}
            for path, (content, mode) in self.fake.files[request.name].items():
                if not path.startswith(prefix):
                    continue
                head, slash, _ = path[len(prefix) :].partition("/")
                if slash:
                    entries[head] = spb.FileEntry(
                        name=head, type=spb.FILE_TYPE_DIRECTORY, mode=0o755
                    )
                else:
                    entries[head] = spb.FileEntry(
                        name=head,
                        type=spb.FILE_TYPE_REGULAR,
                        size=len(content),
                        mode=mode,
                        modify_time=Timestamp(seconds=1_700_000_000),
                    )
            return spb.ListFilesResponse(entries=[entries[k] for k in sorted(entries)])

    async def ListExecs(self, request: spb.ListExecsRequest, context: Context) -> Any:
        async with _answering(context):
            await self._admit("ListExecs", context)
            self._session(request.name)
            infos = []
            for run in self.fake.execs[request.name].values():
                info = spb.ExecInfo(
                    exec_id=run.exec_id,
                    argv=run.start.command.argv,
                    state=run.state,
                    detached=run.start.detached,
                    start_time=run.start_time,
                    last_sequence=len(run.events),
                    first_retained_sequence=1,
                )
                if run.end_time is not None:
                    info.end_time.CopyFrom(run.end_time)
                if run.result is not None:
                    info.result.CopyFrom(run.result)
                infos.append(info)
            return spb.ListExecsResponse(execs=infos)

    async def WatchSessions(
        self, request: spb.WatchSessionsRequest, context: Context
    ) -> AsyncIterator[spb.SessionEvent]:
        events: asyncio.Queue[spb.SessionEvent] = asyncio.Queue()
        async with _answering(context):
            await self._admit("WatchSessions", context)
            self.fake.watches.append(request)
            if request.name:
                self._session(request.name)
            if not request.no_usage:
                for session in self.fake.sessions.values():
                    if _watched(request, session):
                        sample = spb.SessionEvent(
                            type=spb.SESSION_EVENT_TYPE_USAGE,
                            session=session,
                            time=self.fake.now(),
                        )
                        events.put_nowait(sample)
        entry = (request, events)
        self.fake.watchers.append(entry)
        self.fake.poke()
        try:
            while True:
                yield await events.get()
        finally:
            self.fake.watchers.remove(entry)

    async def Exec(
        self, requests: AsyncIterator[spb.ExecRequest], context: Context
    ) -> AsyncIterator[spb.ExecResponse]:
        async with _answering(context):
            await self._admit("Exec", context)
            first = await anext(aiter(requests))
            if first.WhichOneof("request") != "start":
                raise refused(
                    grpc.StatusCode.INVALID_ARGUMENT, "start first", "FIELD_REQUIRED", "start"
                )
            start = first.start
            self.fake.starts.append(start)
            session = self._session(start.session)
            if session.state == spb.SESSION_STATE_PAUSED:
                raise refused(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"{session.name} is paused",
                    "FAILED_PRECONDITION",
                )
            if not start.command.argv:
                raise refused(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "no command",
                    "FIELD_REQUIRED",
                    "start.command",
                )
        run = FakeExec(f"e{len(self.fake.execs[session.name]) + 1}", start)
        run.start_time.CopyFrom(self.fake.now())
        self.fake.execs[session.name][run.exec_id] = run
        session.exec_count += 1
        if start.stdin:
            run.inbox.put_nowait(start.stdin)
        if start.close_stdin:
            run.inbox.put_nowait(_EOF)
        run.task = asyncio.create_task(self._run(session, run))
        feeder = asyncio.create_task(self._feed(requests, run))
        try:
            async for event in self._follow(run, 0):
                yield event
        finally:
            feeder.cancel()
            if run.result is None and not start.detached:
                self.fake.stopped.append(run.exec_id)
                run.inbox.put_nowait(9)  # SIGKILL: the program ends with it
                self.fake.poke()

    async def AttachExec(
        self, request: spb.AttachExecRequest, context: Context
    ) -> AsyncIterator[spb.ExecResponse]:
        async with _answering(context):
            await self._admit("AttachExec", context)
            self._session(request.name)
            found = self.fake.execs[request.name].get(request.exec_id)
            if found is None:
                raise refused(grpc.StatusCode.NOT_FOUND, f"no exec {request.exec_id}", "NOT_FOUND")
            run = found
        async for event in self._follow(run, request.from_sequence):
            yield event

    async def _feed(self, requests: AsyncIterator[spb.ExecRequest], run: FakeExec) -> None:
        async for request in requests:
            kind = request.WhichOneof("request")
            if kind == "stdin":
                run.stdin_seen.append(request.stdin)
                run.inbox.put_nowait(request.stdin)
            elif kind == "close_stdin":
                run.inbox.put_nowait(_EOF)
            elif kind == "signal":
                run.inbox.put_nowait(request.signal)

    async def _follow(self, run: FakeExec, from_sequence: int) -> AsyncIterator[spb.ExecResponse]:
        """The Exec's events from `from_sequence`, then live until its result."""
        assert self.fake.changed is not None
        index = max(from_sequence, 1) - 1
        while True:
            async with self.fake.changed:
                await self.fake.changed.wait_for(partial(_longer, run.events, index))
            event = run.events[index]
            index += 1
            yield event
            if event.HasField("result"):
                return

    async def _run(self, session: spb.Session, run: FakeExec) -> None:
        session.state = spb.SESSION_STATE_BUSY
        await self._event(run, started=spb.ExecStarted(exec_id=run.exec_id, session=session.name))
        argv = list(run.start.command.argv)
        if argv[:2] == ["sh", "-c"] and len(argv) > 2:
            argv = shlex.split(argv[2])
        verdict = await PROGRAMS.get(argv[0], _missing)(self, session, run, argv[1:])
        run.result, run.state, run.end_time = verdict, spb.EXEC_STATE_DONE, self.fake.now()
        if session.state == spb.SESSION_STATE_BUSY:
            session.state = spb.SESSION_STATE_READY
        await self._event(run, result=verdict)

    async def _event(self, run: FakeExec, **event: Any) -> None:
        run.events.append(spb.ExecResponse(sequence=len(run.events) + 1, **event))
        await self.fake.notify()

    async def out(
        self,
        run: FakeExec,
        data: bytes,
        stream: pb.OutputStream.ValueType = pb.OUTPUT_STREAM_STDOUT,
    ) -> None:
        await self._event(run, output=pb.OutputChunk(stream=stream, data=data))


def _longer(events: list[spb.ExecResponse], length: int) -> bool:
    return len(events) > length


def _ok(exit_code: int = 0) -> pb.ExecutionResult:
    status = pb.EXECUTION_STATUS_OK if exit_code == 0 else pb.EXECUTION_STATUS_RUNTIME_ERROR
    return pb.ExecutionResult(status=status, exit_code=exit_code)


def _signaled(number: int) -> pb.ExecutionResult:
    return pb.ExecutionResult(status=pb.EXECUTION_STATUS_SIGNALED, signal=number)


async def _filter(
    service: _Service, session: spb.Session, run: FakeExec, args: list[str], upper: bool
) -> pb.ExecutionResult:
    while True:
        item = await run.inbox.get()
        if item is _EOF:
            return _ok()
        if isinstance(item, int):
            return _signaled(item)
        assert isinstance(item, bytes)
        await service.out(run, item.upper() if upper else item)


async def _upper(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    return await _filter(s, session, run, a, upper=True)


async def _cat(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    return await _filter(s, session, run, a, upper=False)


async def _echo(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    await s.out(run, (" ".join(a) + "\n").encode())
    return _ok()


async def _fail(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    await s.out(run, b"boom\n", pb.OUTPUT_STREAM_STDERR)
    return _ok(3)


async def _env(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    env = {**session.env, **run.start.env}
    lines = [f"{k}={v}" for k, v in sorted(env.items())] + [f"cwd={run.start.cwd}"]
    await s.out(run, ("\n".join(lines) + "\n").encode())
    return _ok()


async def _display(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    await s._event(run, display=spb.DisplayData(mime_type="text/plain", data=b"42"))
    await s._event(run, display=spb.DisplayData(mime_type="image/png", data=PNG))
    return _ok()


async def _sleep(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    await s.out(run, b"tick\n")
    released = asyncio.create_task(run.released.wait())
    signal = asyncio.create_task(_next_signal(run))
    done, _ = await asyncio.wait({released, signal}, return_when=asyncio.FIRST_COMPLETED)
    for task in (released, signal):
        task.cancel()
    if signal in done:
        return _signaled(signal.result())
    await s.out(run, b"done\n")
    return _ok()


async def _next_signal(run: FakeExec) -> int:
    """The next signal sent to the Exec; its stdin is ignored."""
    while True:
        item = await run.inbox.get()
        if isinstance(item, int):
            return item


async def _write(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    s.fake.files[session.name][a[0]] = (" ".join(a[1:]).encode(), 0o644)
    return _ok()


async def _missing(s: _Service, session: spb.Session, run: FakeExec, a: list[str]) -> Any:
    name = run.start.command.argv[0]
    await s.out(run, f"sh: {name}: not found\n".encode(), pb.OUTPUT_STREAM_STDERR)
    return _ok(127)


PROGRAMS = {
    "upper": _upper,
    "cat": _cat,
    "echo": _echo,
    "fail": _fail,
    "env": _env,
    "display": _display,
    "sleep": _sleep,
    "write": _write,
}


class _answering:
    """Turns an `Aborted` raised in the block into the call's rich status."""

    def __init__(self, context: Context) -> None:
        self.context = context

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, kind: object, error: BaseException | None, tb: object) -> bool:
        if isinstance(error, Aborted):
            await _rich(self.context, error)
        return False


@contextmanager
def serve_sessions() -> Iterator[tuple[FakeSessions, str]]:
    """Run a FakeSessions on 127.0.0.1 port 0 in a thread; yields it and its address."""
    fake = FakeSessions()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    server: aio.Server | None = None
    port = 0

    async def start() -> None:
        nonlocal server, port
        fake.changed = asyncio.Condition()
        fake.loop = loop
        server = aio.server()
        spb_grpc.add_SessionServiceServicer_to_server(_Service(fake), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=run, name="fake-sessions", daemon=True)
    thread.start()
    started.wait(timeout=10)
    try:
        yield fake, f"127.0.0.1:{port}"
    finally:
        assert server is not None
        asyncio.run_coroutine_threadsafe(server.stop(grace=None), loop).result(timeout=10)
        pending = asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop)
        pending.result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def _cancel_tasks() -> None:
    """Stop the pretend programs still waiting (a detached `sleep`, ...)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
