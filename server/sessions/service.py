"""The SessionService servicer: requests checked, the manager called, protobuf out.

Errors propagate to the error interceptor as everywhere. A session belongs to
the tenant that created it: another tenant's is NOT_FOUND, as for operations.
An Exec's caller follows the Exec's record (the same path AttachExec takes);
its later messages (stdin, close, signals) are fed to the agent alongside.
A caller that goes away kills its Exec unless the Exec was started detached.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal as signals
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from google.protobuf import empty_pb2
from grpc import aio

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.errors import (
    CodeBeakerError,
    InvalidRequest,
    NotFound,
    Reason,
)
from codebeaker.runtimes.limits import RequestedLimits
from codebeaker.runtimes.model import Limits, OutputFiles, SourceFile
from codebeaker.runtimes.packages.allowlist import Allowlist
from codebeaker.runtimes.sessions.backend import SessionLimits
from codebeaker.server import caller
from codebeaker.server.quotas import Tenancy
from codebeaker.server.requests import (
    _ENV_NAME,
    MAX_ARGS,
    MAX_ENV,
    MAX_REQUEST_ID,
    _limits,
    _path,
    _plain_string,
    _seconds,
    asked_packages,
)
from codebeaker.server.responses import file_messages
from codebeaker.server.sessions.config import SessionConfig, SessionPolicy
from codebeaker.server.sessions.convert import (
    SESSION_ID,
    STATE_OF,
    entry_message,
    event_message,
    exec_info,
    exec_messages,
    session_id,
    session_message,
)
from codebeaker.server.sessions.execs import ExecEvent, ExecRecord
from codebeaker.server.sessions.manager import CreateAsk, ExecAsk, ExecControl, Sessions
from codebeaker.server.sessions.record import SessionRecord
from codebeaker.server.sessions.watch import EventType, WatchFilter
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_LABELS = 64
MAX_WRITE_BYTES = 16 << 20  # one file of WriteFiles (the agent's frame limit)
MAX_WRITE_FILES = 1000
MIN_USAGE_INTERVAL = 1.0
MAX_CELL_BYTES = 1 << 20
_Context = aio.ServicerContext[object, object]


def _tenant() -> str:
    tenant = caller.current_tenant()
    return tenant.name if tenant is not None else ""


class SessionServicer(spb_grpc.SessionServiceServicer):
    def __init__(
        self,
        sessions: Sessions,
        catalog: Callable[[], Catalog],
        policy: SessionPolicy,
        config: SessionConfig,
        file_caps: tuple[int, int],
        tenancy: Tenancy | None = None,
        allowlist: Allowlist | None = None,
    ) -> None:
        self._sessions = sessions
        self._allowlist = allowlist or Allowlist()
        self._tenancy = tenancy
        self._catalog = catalog
        self._policy = policy
        self._config = config
        self._file_caps = OutputFiles((), file_caps[0], file_caps[1])

    # ---------- life cycle ----------

    async def CreateSession(
        self, request: spb.CreateSessionRequest, context: _Context
    ) -> spb.Session:
        ask = self._create_ask(request)
        tenant = caller.current_tenant()
        if tenant is not None and self._tenancy is not None:
            alive = sum(1 for r in self._sessions.listing((), {}) if r.tenant == tenant.name)
            self._tenancy.check_sessions(tenant, alive)
        record = await self._sessions.create(ask)
        caller.note(resource=record.name)
        return session_message(record)

    async def GetSession(self, request: spb.GetSessionRequest, context: _Context) -> spb.Session:
        record = self._owned(request.name)
        usage = await self._sessions.sample(record.id) if record.state.live else None
        return session_message(record, usage)

    async def ListSessions(
        self, request: spb.ListSessionsRequest, context: _Context
    ) -> spb.ListSessionsResponse:
        if request.page_size < 0:
            raise InvalidRequest(
                "page_size", "must not be negative", reason=Reason.LIMIT_NOT_POSITIVE
            )
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        states = []
        for index, value in enumerate(request.states):
            if value not in STATE_OF:
                raise InvalidRequest(
                    f"states[{index}]", f"unknown state {value}", reason=Reason.VALUE_UNKNOWN
                )
            states.append(STATE_OF[value])
        tenant = _tenant()
        found = [
            r for r in self._sessions.listing(states, dict(request.labels)) if r.tenant == tenant
        ]
        found.sort(key=lambda r: (r.create_time, r.id))
        start = _page_start(found, request.page_token)
        page = found[start : start + size]
        token = f"{page[-1].create_time!r}/{page[-1].id}" if start + size < len(found) else ""
        return spb.ListSessionsResponse(
            sessions=[session_message(r, self._sessions.last_usage(r.id)) for r in page],
            next_page_token=token,
        )

    async def DeleteSession(
        self, request: spb.DeleteSessionRequest, context: _Context
    ) -> empty_pb2.Empty:
        record = self._owned(request.name)
        await self._sessions.delete(record.id)
        return empty_pb2.Empty()

    async def PauseSession(
        self, request: spb.PauseSessionRequest, context: _Context
    ) -> spb.Session:
        record = self._owned(request.name)
        return session_message(await self._sessions.pause(record.id))

    async def ResumeSession(
        self, request: spb.ResumeSessionRequest, context: _Context
    ) -> spb.Session:
        record = self._owned(request.name)
        return session_message(await self._sessions.resume(record.id))

    # ---------- Exec ----------

    async def Exec(
        self, request_iterator: AsyncIterator[spb.ExecRequest], context: _Context
    ) -> AsyncIterator[spb.ExecResponse]:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("request") != "start":
            raise InvalidRequest(
                "start", "the first message of an Exec must be start", reason=Reason.FIELD_REQUIRED
            )
        start = first.start
        record = self._owned(start.session, "start.session")
        control: ExecControl
        if start.WhichOneof("program") == "code":
            limits = self._cell_limits(start, record)
            execution, control = self._sessions.start_cell(record.id, start.code, limits)
        else:
            ask = self._exec_ask(start, record)
            execution, control = self._sessions.start_exec(record.id, ask)
        caller.note(resource=f"{record.name}/execs/{execution.exec_id}")
        feeding = asyncio.ensure_future(_feed(request_iterator, control))
        try:
            async for message in _follow(execution, record.name, feeding):
                yield message
        finally:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, CodeBeakerError):
                await feeding
            if not execution.done and not execution.detached:
                control.signal(int(signals.SIGKILL))

    async def AttachExec(
        self, request: spb.AttachExecRequest, context: _Context
    ) -> AsyncIterator[spb.ExecResponse]:
        record = self._owned(request.name)
        execution = self._sessions.exec_record(record.id, request.exec_id)
        async for event in execution.follow(request.from_sequence):
            for message in exec_messages(event, record.name):
                yield message

    async def ListExecs(
        self, request: spb.ListExecsRequest, context: _Context
    ) -> spb.ListExecsResponse:
        record = self._owned(request.name)
        return spb.ListExecsResponse(
            execs=[exec_info(e) for e in self._sessions.exec_records(record.id)]
        )

    # ---------- files ----------

    async def WriteFiles(
        self, request: spb.WriteFilesRequest, context: _Context
    ) -> spb.WriteFilesResponse:
        record = self._owned(request.name)
        if len(request.files) > MAX_WRITE_FILES:
            raise InvalidRequest(
                "files", f"at most {MAX_WRITE_FILES} files per call", reason=Reason.TOO_MANY
            )
        mode = request.mode or 0o644
        if mode > 0o777:
            raise InvalidRequest(
                "mode", "permission bits only (at most 0777)", reason=Reason.VALUE_INVALID
            )
        files = []
        for index, item in enumerate(request.files):
            path = _path(f"files[{index}].path", item.path)
            if len(item.content) > MAX_WRITE_BYTES:
                raise InvalidRequest(
                    f"files[{index}].content",
                    f"above {MAX_WRITE_BYTES} bytes",
                    reason=Reason.TOO_LARGE,
                )
            files.append(SourceFile(path, item.content, mode))
        count, size = await self._sessions.write_files(record.id, files)
        return spb.WriteFilesResponse(files_written=count, bytes_written=size)

    async def ReadFiles(
        self, request: spb.ReadFilesRequest, context: _Context
    ) -> spb.ReadFilesResponse:
        record = self._owned(request.name)
        if not request.paths:
            raise InvalidRequest("paths", "name at least one path", reason=Reason.FIELD_REQUIRED)
        patterns = [_path(f"paths[{i}]", p) for i, p in enumerate(request.paths)]
        files = await self._sessions.read_files(record.id, patterns, self._file_caps)
        return spb.ReadFilesResponse(files=file_messages(files))

    async def ListFiles(
        self, request: spb.ListFilesRequest, context: _Context
    ) -> spb.ListFilesResponse:
        record = self._owned(request.name)
        path = _path("path", request.path) if request.path not in ("", ".") else ""
        entries, truncated = await self._sessions.list_files(record.id, path)
        entries.sort(key=lambda e: e.name)
        return spb.ListFilesResponse(
            entries=[entry_message(e) for e in entries], truncated=truncated
        )

    # ---------- events ----------

    async def WatchSessions(
        self, request: spb.WatchSessionsRequest, context: _Context
    ) -> AsyncIterator[spb.SessionEvent]:
        wanted = WatchFilter(
            session_id=self._owned(request.name).id if request.name else "",
            labels=dict(request.labels),
            tenant=_tenant(),
        )
        interval = _seconds("usage_interval", request.usage_interval) or 0.0
        if interval and interval < MIN_USAGE_INTERVAL:
            raise InvalidRequest(
                "usage_interval",
                f"at least {MIN_USAGE_INTERVAL:g}s",
                reason=Reason.LIMIT_NOT_POSITIVE,
            )
        last_usage: dict[str, float] = {}
        async for item in self._sessions.hub.watch(wanted):
            usage = self._sessions.last_usage(item.record.id)
            if item.type is EventType.USAGE:
                if request.no_usage:
                    continue
                since = item.time - last_usage.get(item.record.id, 0.0)
                if interval and since < interval - 0.5:
                    continue
                last_usage[item.record.id] = item.time
            yield event_message(item, usage)

    # ---------- checks ----------

    def _owned(self, name: str, field: str = "name") -> SessionRecord:
        ident = session_id(name, field)
        caller.note(resource=f"sessions/{ident}")
        record = self._sessions.get(ident)
        if record.tenant != _tenant():
            raise NotFound(f"sessions/{ident}", f"no session sessions/{ident}")
        return record

    def _create_ask(self, request: spb.CreateSessionRequest) -> CreateAsk:
        asked = request.session
        if not asked.language.strip():
            raise InvalidRequest(
                "session.language", "required (e.g. python, bash)", reason=Reason.FIELD_REQUIRED
            )
        spec = self._catalog().select(
            asked.language, asked.version, "session.language", "session.version"
        )
        if request.session_id and not SESSION_ID.fullmatch(request.session_id):
            raise InvalidRequest(
                "session_id",
                "4 to 63 of a-z, 0-9 and -, starting with a letter",
                reason=Reason.VALUE_INVALID,
            )
        if len(request.request_id) > MAX_REQUEST_ID or not request.request_id.isprintable():
            raise InvalidRequest(
                "request_id",
                f"at most {MAX_REQUEST_ID} printable characters",
                reason=Reason.VALUE_INVALID,
            )
        policy = self._policy
        requested = _limits("session.limits", asked.limits)
        exec_limits = policy.exec_policy.resolve(
            RequestedLimits(
                requested.wall_time, requested.cpu_time, None, None, requested.max_output_bytes
            ),
            "session.limits",
        )
        sandbox = SessionLimits(
            memory_bytes=_bounded(
                "session.limits.memory_bytes",
                requested.memory_bytes,
                policy.sandbox_default.memory_bytes,
                policy.sandbox_maximum.memory_bytes,
            ),
            max_processes=_bounded(
                "session.limits.max_processes",
                requested.max_processes,
                policy.sandbox_default.max_processes,
                policy.sandbox_maximum.max_processes,
            ),
            disk_bytes=_bounded(
                "session.disk_bytes",
                asked.disk_bytes or None,
                policy.sandbox_default.disk_bytes,
                policy.sandbox_maximum.disk_bytes,
            ),
            cpus=_bounded(
                "session.cpus",
                asked.cpus or None,
                policy.sandbox_default.cpus,
                policy.sandbox_maximum.cpus,
            ),
        )
        config = self._config
        longest = config.session_max_lifetime
        return CreateAsk(
            spec=spec,
            version=spec.version,
            sandbox=sandbox,
            exec_limits=exec_limits,
            idle_timeout=_bounded(
                "session.idle_timeout",
                _seconds("session.idle_timeout", asked.idle_timeout),
                config.session_idle_timeout,
                longest,
            ),
            lifetime=_bounded(
                "session.lifetime",
                _seconds("session.lifetime", asked.lifetime),
                config.session_lifetime,
                longest,
            ),
            labels=_labels(asked.labels),
            env=_env("session.env", asked.env),
            session_id=request.session_id,
            request_id=request.request_id,
            tenant=_tenant(),
            packages=self._allowlist.check(
                spec, asked_packages(asked.packages), "session.packages"
            ),
        )

    def _exec_ask(self, start: spb.ExecStart, record: SessionRecord) -> ExecAsk:
        argv = tuple(start.command.argv)
        if not argv or not argv[0]:
            raise InvalidRequest(
                "start.command.argv", "name the program to run", reason=Reason.FIELD_REQUIRED
            )
        if len(argv) > MAX_ARGS:
            raise InvalidRequest(
                "start.command.argv", f"at most {MAX_ARGS} arguments", reason=Reason.TOO_MANY
            )
        for index, value in enumerate(argv):
            _plain_string(f"start.command.argv[{index}]", value)
        cwd = _path("start.cwd", start.cwd) if start.cwd not in ("", ".") else ""
        return ExecAsk(
            argv=argv,
            env=_env("start.env", start.env),
            cwd=cwd,
            limits=self._exec_limits(start, record),
            detached=start.detached,
            stdin=start.stdin,
            close_stdin=start.close_stdin,
        )

    def _cell_limits(self, start: spb.ExecStart, record: SessionRecord) -> Limits:
        if len(start.code.encode()) > MAX_CELL_BYTES:
            raise InvalidRequest(
                "start.code", f"a cell is at most {MAX_CELL_BYTES} bytes", reason=Reason.TOO_LARGE
            )
        for name in ("stdin", "cwd", "env", "detached"):
            if getattr(start, name):
                raise InvalidRequest(
                    f"start.{name}",
                    "a code cell runs in the session's interpreter: no stdin, cwd, env or detach",
                    reason=Reason.FIELD_UNSUPPORTED,
                )
        return self._exec_limits(start, record)

    def _exec_limits(self, start: spb.ExecStart, record: SessionRecord) -> Limits:
        requested = _limits("start.limits", start.limits)
        for name in ("memory_bytes", "max_processes"):
            if getattr(requested, name) is not None:
                raise InvalidRequest(
                    f"start.limits.{name}",
                    "an Exec shares its session's memory and processes",
                    reason=Reason.FIELD_UNSUPPORTED,
                )
        defaults = record.exec_limits
        return self._policy.exec_policy.resolve(
            RequestedLimits(
                requested.wall_time or defaults.wall_time,
                requested.cpu_time or defaults.cpu_time,
                None,
                None,
                requested.max_output_bytes or defaults.max_output_bytes,
            ),
            "start.limits",
        )


async def _feed(requests: AsyncIterator[spb.ExecRequest], handle: ExecControl) -> None:
    """The caller's messages after start, to the agent; a misplaced one is the
    caller's error (raised into the Exec's stream)."""
    async for message in requests:
        kind = message.WhichOneof("request")
        if kind == "stdin":
            await handle.write_stdin(message.stdin)
        elif kind == "close_stdin":
            if message.close_stdin:
                handle.close_stdin()
        elif kind == "signal":
            if not 1 <= message.signal <= 64:
                raise InvalidRequest(
                    "signal", "a signal number from 1 to 64", reason=Reason.VALUE_INVALID
                )
            handle.signal(message.signal)
        elif kind == "start":
            raise InvalidRequest(
                "start",
                "an Exec takes one start, as its first message",
                reason=Reason.FIELDS_CONFLICT,
            )


async def _follow(
    execution: ExecRecord, session_name: str, feeding: asyncio.Future[None]
) -> AsyncIterator[spb.ExecResponse]:
    """The Exec's events as responses; the feeder's error ends the stream with it."""
    events = aiter(execution.follow(1))
    while True:
        upcoming: asyncio.Future[ExecEvent | None] = asyncio.ensure_future(anext(events, None))
        waiting: set[asyncio.Future[Any]] = {upcoming, feeding}
        await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if feeding.done() and not feeding.cancelled():
            error = feeding.exception()
            if error is not None:
                upcoming.cancel()
                raise error
        event = await upcoming
        if event is None:
            return
        for message in exec_messages(event, session_name):
            yield message


def _page_start(found: list[SessionRecord], token: str) -> int:
    if not token:
        return 0
    raw_time, _, ident = token.partition("/")
    try:
        after = (float(raw_time), ident)
    except ValueError:
        raise InvalidRequest(
            "page_token", "not a token this server gave", reason=Reason.VALUE_INVALID
        ) from None
    for index, record in enumerate(found):
        if (record.create_time, record.id) > after:
            return index
    return len(found)


def _bounded(field: str, asked: float | int | None, default: float | int, maximum: float | int):  # type: ignore[no-untyped-def]
    if asked is None:
        return default
    if asked <= 0:
        raise InvalidRequest(
            field, f"must be positive, got {asked}", reason=Reason.LIMIT_NOT_POSITIVE
        )
    if asked > maximum:
        raise InvalidRequest(
            field,
            f"{asked} is above the server's maximum {maximum}",
            reason=Reason.LIMIT_ABOVE_MAXIMUM,
        )
    return asked


def _labels(labels: Mapping[str, str]) -> dict[str, str]:
    items = dict(labels)
    if len(items) > MAX_LABELS:
        raise InvalidRequest(
            "session.labels", f"at most {MAX_LABELS} labels", reason=Reason.TOO_MANY
        )
    for key, value in items.items():
        if not key or len(key) > 63 or len(value) > 255:
            raise InvalidRequest(
                f"session.labels[{key[:40]!r}]",
                "keys of 1-63 characters, values up to 255",
                reason=Reason.VALUE_INVALID,
            )
        _plain_string(f"session.labels[{key!r}]", value)
    return items


def _env(field: str, env: Mapping[str, str]) -> dict[str, str]:
    items = dict(env)
    if len(items) > MAX_ENV:
        raise InvalidRequest(
            field, f"{len(items)} variables; the maximum is {MAX_ENV}", reason=Reason.TOO_MANY
        )
    for key, value in items.items():
        if not _ENV_NAME.match(key):
            raise InvalidRequest(
                f"{field}[{key[:40]!r}]",
                "names are letters, digits and _",
                reason=Reason.VALUE_INVALID,
            )
        _plain_string(f"{field}[{key!r}]", value)
    return items
