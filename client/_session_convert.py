"""Where `codebeaker.v1` session messages meet the SDK's session values.

Both SDKs (`session`, `aio_session`) build their SessionService requests and
read its answers here, so the blocking and the asyncio handles cannot drift
apart and no protobuf type escapes. `ExecReader` is the one reading of an
Exec's response stream (events, the Exec's id, the output collected into its
`ExecResult`) that both SDKs' stream objects are thin loops around.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from codebeaker.client._convert import (
    as_bytes,
    duration,
    limits_from_proto,
    limits_to_proto,
    package_requests,
    result_from_proto,
    seconds,
)
from codebeaker.client.session_types import (
    CellResult,
    ExecDisplay,
    ExecEvent,
    ExecFinished,
    ExecInfo,
    ExecOutput,
    ExecResult,
    ExecStarted,
    ExecState,
    FileEntry,
    FileList,
    FileType,
    SessionEvent,
    SessionEventType,
    SessionInfo,
    SessionState,
    SessionUsage,
)
from codebeaker.client.types import Limits, OutputStream, Packages
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb

COLLECTION = "sessions"
"""The collection every session's name is in: `sessions/{id}`."""

Argv = Sequence[str] | str
"""A command: its argv, or a shell command line (run as `sh -c LINE`)."""

_E = TypeVar("_E", bound=enum.StrEnum)


class _WireEnum(Protocol):
    """A generated enum's wrapper (`spb.SessionState`, ...), as read here."""

    def Name(self, number: Any) -> str: ...


def session_name(name: str) -> str:
    """`sessions/{id}` from itself or from the bare id."""
    if not name or name == COLLECTION + "/" or "/" in name.removeprefix(COLLECTION + "/"):
        raise ValueError(f"a session name is sessions/ID (or ID alone), not {name!r}")
    return name if name.startswith(COLLECTION + "/") else f"{COLLECTION}/{name}"


def create_request(
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
) -> spb.CreateSessionRequest:
    """The wire form of a new session; the server validates its meaning."""
    if not language:
        raise ValueError("a session needs a language")
    if disk_bytes is not None and disk_bytes < 0:
        raise ValueError("disk_bytes must be >= 0")
    if cpus is not None and not (math.isfinite(cpus) and cpus >= 0):
        raise ValueError("cpus must be a finite number >= 0")
    session = spb.Session(
        language=language,
        version=version or "",
        env=dict(env or {}),
        labels=dict(labels or {}),
        disk_bytes=disk_bytes or 0,
        cpus=cpus or 0.0,
        packages=package_requests(packages),
    )
    if limits is not None:
        session.limits.CopyFrom(limits_to_proto(limits))
    if idle_timeout is not None:
        session.idle_timeout.CopyFrom(_checked_duration("idle_timeout", idle_timeout))
    if lifetime is not None:
        session.lifetime.CopyFrom(_checked_duration("lifetime", lifetime))
    return spb.CreateSessionRequest(
        session=session, session_id=session_id or "", request_id=request_id or ""
    )


def list_request(
    states: Iterable[SessionState | str] | None,
    labels: Mapping[str, str] | None,
    page_size: int | None,
    page_token: str,
) -> spb.ListSessionsRequest:
    if page_size is not None and page_size < 1:
        raise ValueError("page_size must be at least 1")
    if isinstance(states, str):
        states = [states]  # one state, not one per character
    return spb.ListSessionsRequest(
        page_size=page_size or 0,
        page_token=page_token,
        states=[state_to_proto(state) for state in states or ()],
        labels=dict(labels or {}),
    )


def watch_request(
    name: str | None,
    labels: Mapping[str, str] | None,
    usage_interval: float | None,
    usage: bool,
) -> spb.WatchSessionsRequest:
    request = spb.WatchSessionsRequest(
        name=session_name(name) if name else "", labels=dict(labels or {}), no_usage=not usage
    )
    if usage_interval is not None:
        request.usage_interval.CopyFrom(_checked_duration("usage_interval", usage_interval))
    return request


def exec_start(
    session: str,
    argv: Argv,
    *,
    stdin: bytes | str = b"",
    close_stdin: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    limits: Limits | None = None,
    detached: bool = False,
) -> spb.ExecRequest:
    """The first message of an Exec: the command, and stdin to send first."""
    start = spb.ExecStart(
        session=session,
        command=spb.Command(argv=command_argv(argv)),
        env=dict(env or {}),
        cwd=cwd or "",
        detached=detached,
        stdin=as_bytes(stdin),
        close_stdin=close_stdin,
    )
    if limits is not None:
        start.limits.CopyFrom(limits_to_proto(limits))
    return spb.ExecRequest(start=start)


def cell_start(session: str, code: str, limits: Limits | None = None) -> spb.ExecRequest:
    """The one message of a code cell."""
    if not isinstance(code, str):
        raise TypeError("code must be a str")
    start = spb.ExecStart(session=session, code=code)
    if limits is not None:
        start.limits.CopyFrom(limits_to_proto(limits))
    return spb.ExecRequest(start=start)


def cell_result(result: ExecResult, displays: Iterable[ExecDisplay]) -> CellResult:
    values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    return CellResult(**values, displays=tuple(displays))


def command_argv(argv: Argv) -> list[str]:
    """A str is a shell command line (`sh -c LINE`); a sequence is the argv itself."""
    if isinstance(argv, str):
        if not argv.strip():
            raise ValueError("the command line is empty")
        return ["sh", "-c", argv]
    if isinstance(argv, bytes | bytearray):
        raise TypeError("argv must be a str or a sequence of str, not bytes")
    command = list(argv)
    if not command:
        raise ValueError("argv is empty: name a program")
    if not all(isinstance(part, str) for part in command):
        raise TypeError("every argument of argv must be a str")
    return command


def stdin_request(data: bytes | str) -> spb.ExecRequest:
    return spb.ExecRequest(stdin=as_bytes(data))


def close_stdin_request() -> spb.ExecRequest:
    return spb.ExecRequest(close_stdin=True)


def signal_request(number: int) -> spb.ExecRequest:
    if not 0 < number < 65:
        raise ValueError(f"not a signal number: {number}")
    return spb.ExecRequest(signal=number)


def files_to_proto(files: Mapping[str, bytes | str]) -> list[pb.File]:
    if not isinstance(files, Mapping):
        raise TypeError("files must map each path to its content (bytes or str)")
    return [pb.File(path=path, content=as_bytes(content)) for path, content in files.items()]


def paths_list(paths: Iterable[str] | str) -> list[str]:
    return [paths] if isinstance(paths, str) else list(paths)


def info_from_proto(message: spb.Session) -> SessionInfo:
    return SessionInfo(
        name=message.name,
        state=_state(message.state),
        language=message.language,
        version=message.version,
        reason=message.state_reason,
        limits=limits_from_proto(message.limits),
        idle_timeout=seconds(message.idle_timeout) if message.HasField("idle_timeout") else None,
        lifetime=seconds(message.lifetime) if message.HasField("lifetime") else None,
        disk_bytes=message.disk_bytes,
        cpus=message.cpus,
        labels=dict(message.labels),
        env=dict(message.env),
        usage=_usage(message.usage) if message.HasField("usage") else None,
        exec_count=message.exec_count,
        packages={p.name: p.version for p in message.packages},
        create_time=_at(message.HasField("create_time"), message.create_time),
        update_time=_at(message.HasField("update_time"), message.update_time),
        last_activity_time=_at(message.HasField("last_activity_time"), message.last_activity_time),
        expire_time=_at(message.HasField("expire_time"), message.expire_time),
    )


def session_event_from_proto(message: spb.SessionEvent) -> SessionEvent:
    previous = message.previous_state
    return SessionEvent(
        type=_member(SessionEventType, spb.SessionEventType, message.type, "SESSION_EVENT_TYPE_"),
        session=info_from_proto(message.session),
        previous_state=None if previous == spb.SESSION_STATE_UNSPECIFIED else _state(previous),
        reason=message.reason,
        time=_at(message.HasField("time"), message.time),
    )


def files_from_listing(message: spb.ListFilesResponse) -> FileList:
    entries = (
        FileEntry(
            name=entry.name,
            type=_member(FileType, spb.FileType, entry.type, "FILE_TYPE_"),
            size=entry.size,
            mode=entry.mode,
            mtime=_at(entry.HasField("modify_time"), entry.modify_time),
        )
        for entry in message.entries
    )
    return FileList(entries, truncated=message.truncated)


def exec_info_from_proto(message: spb.ExecInfo) -> ExecInfo:
    return ExecInfo(
        exec_id=message.exec_id,
        state=_member(ExecState, spb.ExecState, message.state, "EXEC_STATE_"),
        argv=tuple(message.argv),
        code=message.code,
        detached=message.detached,
        start_time=_at(message.HasField("start_time"), message.start_time),
        end_time=_at(message.HasField("end_time"), message.end_time),
        result=result_from_proto(message.result) if message.HasField("result") else None,
        last_sequence=message.last_sequence,
        first_retained_sequence=message.first_retained_sequence,
    )


class ExecReader:
    """Reads one Exec's responses in order: events out, output collected, the result built."""

    def __init__(self, exec_id: str = "") -> None:
        self.exec_id = exec_id
        self.result: ExecResult | None = None
        self._stdout = bytearray()
        self._stderr = bytearray()
        self._streamed: set[OutputStream] = set()

    def read(self, message: spb.ExecResponse) -> ExecEvent | None:
        """The event a message carries; None for a kind this SDK predates."""
        sequence = message.sequence
        kind = message.WhichOneof("event")
        if kind == "started":
            self.exec_id = message.started.exec_id or self.exec_id
            return ExecStarted(self.exec_id, message.started.session, sequence)
        if kind == "output":
            chunk = message.output
            stream = (
                OutputStream.STDERR
                if chunk.stream == pb.OUTPUT_STREAM_STDERR
                else OutputStream.STDOUT
            )
            self._streamed.add(stream)
            (self._stderr if stream is OutputStream.STDERR else self._stdout).extend(chunk.data)
            return ExecOutput(stream, chunk.data, sequence)
        if kind == "display":
            return ExecDisplay(message.display.mime_type, message.display.data, sequence)
        if kind == "result":
            self.result = self._result(message.result)
            return ExecFinished(self.result, sequence)
        return None

    def _result(self, message: pb.ExecutionResult) -> ExecResult:
        verdict = result_from_proto(message)
        fields = {f.name: getattr(verdict, f.name) for f in dataclasses.fields(verdict)}
        # Output that came as events is the output; a server that put it in the
        # result instead is believed for a stream that sent none.
        if OutputStream.STDOUT in self._streamed:
            fields["stdout"] = bytes(self._stdout)
        if OutputStream.STDERR in self._streamed:
            fields["stderr"] = bytes(self._stderr)
        return ExecResult(exec_id=self.exec_id, **fields)


def _checked_duration(name: str, amount: float) -> Duration:
    if not (math.isfinite(amount) and amount >= 0):
        raise ValueError(f"{name} must be a finite number of seconds >= 0")
    return duration(amount)


def _usage(message: spb.SessionUsage) -> SessionUsage:
    return SessionUsage(
        cpu_time=seconds(message.cpu_time),
        memory_bytes=message.memory_bytes,
        peak_memory_bytes=message.peak_memory_bytes,
        disk_bytes=message.disk_bytes,
        sample_time=_at(message.HasField("sample_time"), message.sample_time),
    )


def state_to_proto(state: SessionState | str) -> spb.SessionState.ValueType:
    try:
        chosen = SessionState(str(state).upper())
    except ValueError:
        known = ", ".join(s.value for s in SessionState if s is not SessionState.UNSPECIFIED)
        raise ValueError(f"unknown session state {state!r} (known: {known})") from None
    if chosen is SessionState.UNSPECIFIED:
        raise ValueError("UNSPECIFIED is no state to list by")
    return spb.SessionState.Value(f"SESSION_STATE_{chosen.value}")


def _state(value: spb.SessionState.ValueType) -> SessionState:
    return _member(SessionState, spb.SessionState, value, "SESSION_STATE_")


def _member(kind: type[_E], wire: _WireEnum, value: int, prefix: str) -> _E:
    """The SDK's member for a wire enum value; UNSPECIFIED for one this SDK predates."""
    try:
        return kind(wire.Name(value).removeprefix(prefix))
    except ValueError:
        return kind("UNSPECIFIED")


def _at(present: bool, stamp: Timestamp) -> datetime | None:
    return stamp.ToDatetime(tzinfo=UTC) if present else None
