"""The SDK's values for sessions: what `Session` handles report and their Execs yield.

Kept apart from `types` (the one-shot executions' vocabulary) but in the same
style: frozen dataclasses and string enums, float seconds, timezone-aware UTC
datetimes, program data as `bytes`. They are read from the wire in one place
(`_session_convert`), so the blocking and the asyncio SDK report alike.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from codebeaker.client.types import ExecutionResult, Limits, OutputStream


class SessionState(enum.StrEnum):
    """Where a session is in its life (`codebeaker.v1.SessionState`)."""

    UNSPECIFIED = "UNSPECIFIED"
    """Not set by the server, or a state added after this SDK was built."""
    CREATING = "CREATING"
    READY = "READY"
    """Started, no Exec running."""
    BUSY = "BUSY"
    """At least one Exec running."""
    PAUSED = "PAUSED"
    TERMINATED = "TERMINATED"
    """Ended by a delete, its idle timeout or its lifetime (`reason` says which)."""
    FAILED = "FAILED"
    """Its sandbox died or vanished outside the server's control."""

    @property
    def ended(self) -> bool:
        """TERMINATED or FAILED: nothing runs in it any more."""
        return self in _ENDED


_ENDED = frozenset({SessionState.TERMINATED, SessionState.FAILED})


class SessionEventType(enum.StrEnum):
    """What a `SessionEvent` reports (`codebeaker.v1.SessionEventType`)."""

    UNSPECIFIED = "UNSPECIFIED"
    CREATED = "CREATED"
    STATE_CHANGED = "STATE_CHANGED"
    USAGE = "USAGE"
    """A usage sample (`session.usage`)."""
    DELETED = "DELETED"
    LOST = "LOST"
    """Its sandbox vanished or died outside the server's control."""


class FileType(enum.StrEnum):
    """What a directory entry is (`codebeaker.v1.FileType`)."""

    UNSPECIFIED = "UNSPECIFIED"
    REGULAR = "REGULAR"
    DIRECTORY = "DIRECTORY"
    SYMLINK = "SYMLINK"
    """Never followed."""
    OTHER = "OTHER"
    """A FIFO, socket or device."""


class ExecState(enum.StrEnum):
    """Where an Exec of a session is (`codebeaker.v1.ExecState`)."""

    UNSPECIFIED = "UNSPECIFIED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    """It ended; its result holds the verdict."""
    LOST = "LOST"
    """It could not be followed to its end (the server restarted meanwhile)."""


def _frozen(mapping: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping or {}))


@dataclass(frozen=True)
class SessionUsage:
    """What a session's sandbox uses, as its cgroup counts it, at `sample_time`."""

    cpu_time: float = 0.0
    """CPU seconds of every process of the session since it was created."""
    memory_bytes: int = 0
    peak_memory_bytes: int = 0
    disk_bytes: int = 0
    """Bytes in its working directory and /tmp."""
    sample_time: datetime | None = None


@dataclass(frozen=True)
class SessionInfo:
    """One reading of a session: what the server said about it at that moment.

    `limits` are the whole session's (`memory_bytes`, `max_processes`) and the
    defaults of each Exec (`wall_time`, `cpu_time`, `max_output_bytes`); None
    where the server reported none. Times are UTC; None when not set.
    """

    name: str
    """`sessions/{id}`."""
    state: SessionState
    language: str = ""
    version: str = ""
    reason: str = ""
    """Why it is in its state, for people (e.g. "idle for 600s")."""
    limits: Limits = field(default_factory=Limits)
    idle_timeout: float | None = None
    lifetime: float | None = None
    disk_bytes: int = 0
    cpus: float = 0.0
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    env: Mapping[str, str] = field(default_factory=dict, hash=False)
    usage: SessionUsage | None = None
    exec_count: int = 0
    packages: Mapping[str, str] = field(default_factory=dict, hash=False)
    """Installed for it: each package asked for -> the version installed."""
    create_time: datetime | None = None
    update_time: datetime | None = None
    last_activity_time: datetime | None = None
    expire_time: datetime | None = None
    """When its lifetime ends."""

    def __post_init__(self) -> None:
        # Read-only views: the value is frozen, its mappings too.
        object.__setattr__(self, "labels", _frozen(self.labels))
        object.__setattr__(self, "env", _frozen(self.env))
        object.__setattr__(self, "packages", _frozen(self.packages))

    @property
    def id(self) -> str:
        """The id part of `name`."""
        return self.name.removeprefix("sessions/")


@dataclass(frozen=True)
class SessionEvent:
    """One thing that happened to a session (`WatchSessions`)."""

    type: SessionEventType
    session: SessionInfo
    """The session as it is after the event."""
    previous_state: SessionState | None = None
    """Its state before a STATE_CHANGED event; None when not reported."""
    reason: str = ""
    time: datetime | None = None


@dataclass(frozen=True)
class FileEntry:
    """One entry of a session's directory (a symlink is never followed)."""

    name: str
    type: FileType
    size: int = 0
    mode: int = 0
    """Permission bits, e.g. 0o644."""
    mtime: datetime | None = None


class FileList(list[FileEntry]):
    """`Session.list_files`' entries, sorted by name; `truncated` when the
    directory holds more than the server returns (it returns the first 1000)."""

    def __init__(self, entries: Iterable[FileEntry] = (), *, truncated: bool = False) -> None:
        super().__init__(entries)
        self.truncated = truncated


@dataclass(frozen=True)
class FilesWritten:
    """What `Session.write_files` wrote."""

    files: int
    total_bytes: int


@dataclass(frozen=True)
class ExecResult(ExecutionResult):
    """The outcome of one Exec in a session: an `ExecutionResult` and the Exec's id.

    `stdout` and `stderr` are the output the call carried, collected from its
    events (as capped by the Exec's `max_output_bytes`); from `attach` with a
    `from_sequence`, only what was replayed from there on.
    """

    exec_id: str = ""


@dataclass(frozen=True)
class CellResult(ExecResult):
    """The outcome of one code cell (`Session.run_code`): its verdict, output and rich
    output. An exception in the cell is `RUNTIME_ERROR` with the traceback in `stderr`;
    the interpreter lives on."""

    displays: tuple[ExecDisplay, ...] = ()

    @property
    def text(self) -> str | None:
        """The cell's last value as text (`repr` in Python, `util.inspect` in Node), if any."""
        return self._first("text/plain")

    @property
    def html(self) -> str | None:
        """The last value's HTML (a pandas DataFrame), if it offers one."""
        return self._first("text/html")

    @property
    def images(self) -> list[bytes]:
        """PNG images (matplotlib figures left open at the end of the cell)."""
        return [d.data for d in self.displays if d.mime_type == "image/png"]

    def _first(self, mime_type: str) -> str | None:
        for display in self.displays:
            if display.mime_type == mime_type:
                return display.data.decode(errors="replace")
        return None


@dataclass(frozen=True)
class ExecInfo:
    """The record a session keeps of one Exec (`Session.list_execs`)."""

    exec_id: str
    state: ExecState
    argv: tuple[str, ...] = ()
    code: str = ""
    """The cell, for a code Exec."""
    detached: bool = False
    start_time: datetime | None = None
    end_time: datetime | None = None
    result: ExecutionResult | None = None
    """Its verdict without output, once DONE."""
    last_sequence: int = 0
    """Sequence number of its latest event."""
    first_retained_sequence: int = 0
    """Output from this sequence number on can be replayed (`Session.attach`)."""


@dataclass(frozen=True)
class ExecStarted:
    """First event of an Exec: its id in the session (for `list_execs` and `attach`)."""

    exec_id: str
    session: str = ""
    sequence: int = 0


@dataclass(frozen=True)
class ExecOutput:
    """A piece of an Exec's output, bytes exactly as written."""

    stream: OutputStream
    data: bytes
    sequence: int = 0
    """Its number within the Exec: `attach(exec_id, from_sequence=...)` resumes after it."""


@dataclass(frozen=True)
class ExecDisplay:
    """Rich output of a code cell: `text/plain`, `text/html`, `image/png`, ..."""

    mime_type: str
    data: bytes
    sequence: int = 0


@dataclass(frozen=True)
class ExecFinished:
    """Last event of an Exec: its verdict."""

    result: ExecResult
    sequence: int = 0


ExecEvent = ExecStarted | ExecOutput | ExecDisplay | ExecFinished
"""One event of `Session.exec_stream`, `interactive` and `attach` (both SDKs)."""
