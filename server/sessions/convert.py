"""Sessions between protobuf and the manager's values."""

from __future__ import annotations

import re

from google.protobuf.timestamp_pb2 import Timestamp

from codebeaker.runtimes.errors import InvalidRequest, NotFound, Reason
from codebeaker.runtimes.model import Finished, Output
from codebeaker.runtimes.sessions.wire import DirEntry
from codebeaker.server.responses import duration, output_chunks, result_message
from codebeaker.server.sessions.execs import (
    Display,
    ExecBegan,
    ExecEvent,
    ExecFailure,
    ExecRecord,
    ExecState,
)
from codebeaker.server.sessions.manager import Usage
from codebeaker.server.sessions.record import SessionRecord, State
from codebeaker.server.sessions.watch import EventType, SessionEvent
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb

PREFIX = "sessions/"
SESSION_ID = re.compile(r"[a-z][a-z0-9-]{3,62}")

STATES = {
    State.CREATING: spb.SESSION_STATE_CREATING,
    State.READY: spb.SESSION_STATE_READY,
    State.BUSY: spb.SESSION_STATE_BUSY,
    State.PAUSED: spb.SESSION_STATE_PAUSED,
    State.TERMINATED: spb.SESSION_STATE_TERMINATED,
    State.FAILED: spb.SESSION_STATE_FAILED,
}
STATE_OF = {value: key for key, value in STATES.items()}
EVENT_TYPES = {
    EventType.CREATED: spb.SESSION_EVENT_TYPE_CREATED,
    EventType.STATE_CHANGED: spb.SESSION_EVENT_TYPE_STATE_CHANGED,
    EventType.USAGE: spb.SESSION_EVENT_TYPE_USAGE,
    EventType.DELETED: spb.SESSION_EVENT_TYPE_DELETED,
    EventType.LOST: spb.SESSION_EVENT_TYPE_LOST,
}
EXEC_STATES = {
    ExecState.RUNNING: spb.EXEC_STATE_RUNNING,
    ExecState.DONE: spb.EXEC_STATE_DONE,
    ExecState.LOST: spb.EXEC_STATE_LOST,
}
FILE_TYPES = {"f": spb.FILE_TYPE_REGULAR, "d": spb.FILE_TYPE_DIRECTORY, "l": spb.FILE_TYPE_SYMLINK}


def session_id(name: str, field: str = "name") -> str:
    """The id in "sessions/{id}" (or a bare id); a malformed one is NOT_FOUND-proof INVALID."""
    value = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if not value:
        raise InvalidRequest(
            field, "a session name (sessions/{id}) is required", reason=Reason.FIELD_REQUIRED
        )
    if not SESSION_ID.fullmatch(value):
        raise NotFound(f"{PREFIX}{value[:80]}", f"no session {PREFIX}{value[:80]}")
    return value


def timestamp(seconds: float) -> Timestamp:
    value = Timestamp()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def session_message(record: SessionRecord, usage: Usage | None = None) -> spb.Session:
    limits = record.exec_limits
    message = spb.Session(
        name=record.name,
        language=record.language,
        version=record.version,
        state=STATES[record.state],
        state_reason=record.reason,
        limits=pb.ResourceLimits(
            wall_time=duration(limits.wall_time),
            cpu_time=duration(limits.cpu_time),
            memory_bytes=record.sandbox.memory_bytes,
            max_processes=record.sandbox.max_processes,
            max_output_bytes=limits.max_output_bytes,
        ),
        idle_timeout=duration(record.idle_timeout),
        expire_time=timestamp(record.expire_time),
        create_time=timestamp(record.create_time),
        update_time=timestamp(record.update_time),
        last_activity_time=timestamp(record.last_activity_time),
        labels=record.labels,
        env=record.env,
        lifetime=duration(record.lifetime),
        disk_bytes=record.sandbox.disk_bytes,
        cpus=record.sandbox.cpus,
        exec_count=record.exec_count,
        packages=[pb.PackageRequest(name=n, version=v) for n, v in sorted(record.packages.items())],
    )
    if usage is not None and usage.sample_time:
        message.usage.CopyFrom(
            spb.SessionUsage(
                cpu_time=duration(usage.cpu_time),
                memory_bytes=usage.memory_bytes,
                peak_memory_bytes=usage.peak_memory_bytes,
                disk_bytes=usage.disk_bytes,
                sample_time=timestamp(usage.sample_time),
            )
        )
    return message


def event_message(item: SessionEvent, usage: Usage | None) -> spb.SessionEvent:
    message = spb.SessionEvent(
        type=EVENT_TYPES[item.type],
        session=session_message(item.record, usage),
        reason=item.reason,
        time=timestamp(item.time),
    )
    if item.previous_state is not None:
        message.previous_state = STATES[item.previous_state]
    return message


def exec_messages(event: ExecEvent, session_name: str) -> list[spb.ExecResponse]:
    """The responses of one Exec event (long output is split into wire-sized chunks)."""
    payload = event.payload
    if isinstance(payload, ExecBegan):
        started = spb.ExecStarted(exec_id=payload.exec_id, session=session_name)
        return [spb.ExecResponse(sequence=event.sequence, started=started)]
    if isinstance(payload, Output):
        chunks = output_chunks(payload.stream, payload.data)
        return [spb.ExecResponse(sequence=event.sequence, output=c) for c in chunks]
    if isinstance(payload, Display):
        display = spb.DisplayData(
            mime_type=payload.mime_type, data=payload.data, truncated=payload.truncated
        )
        return [spb.ExecResponse(sequence=event.sequence, display=display)]
    if isinstance(payload, ExecFailure):
        raise payload.error
    result = result_message(Finished(payload), "")
    return [spb.ExecResponse(sequence=event.sequence, result=result)]


def exec_info(record: ExecRecord) -> spb.ExecInfo:
    info = spb.ExecInfo(
        exec_id=record.exec_id,
        argv=list(record.argv),
        code=record.code,
        state=EXEC_STATES[record.state],
        detached=record.detached,
        start_time=timestamp(record.start_time),
        last_sequence=record.last_sequence,
        first_retained_sequence=record.first_retained,
    )
    if record.end_time:
        info.end_time.CopyFrom(timestamp(record.end_time))
    if record.outcome is not None:
        info.result.CopyFrom(result_message(Finished(record.outcome), ""))
    return info


def entry_message(entry: DirEntry) -> spb.FileEntry:
    return spb.FileEntry(
        name=entry.name,
        type=FILE_TYPES.get(entry.kind, spb.FILE_TYPE_OTHER),
        size=entry.size,
        mode=entry.mode & 0o7777,
        modify_time=timestamp(entry.mtime),
    )
