"""Operations on the wire: a record as a google.longrunning.Operation, names, filters, statuses.

Names are `operations/{id}`. A ListOperations filter is a small grammar (AIP-160's subset):

    filter := conjunction ("OR" conjunction)*
    conjunction := term ("AND" term)*
    term := "state" ("=" | "!=") STATE | "done" ("=" | "!=") ("true" | "false")

STATE is QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED (or its EXECUTION_STATE_ form), keywords
and values in any case: `state = QUEUED`, `done = true`, `state = RUNNING OR state = QUEUED`,
`done = true AND state != CANCELLED`. Anything else is INVALID_ARGUMENT naming `filter`.
"""

from __future__ import annotations

import re

import grpc
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.errors import CodeBeakerError, InvalidRequest, Reason
from codebeaker.server.errors import DOMAIN, details_for, rich_status, status_for
from codebeaker.server.operations.store import DONE_STATES, OperationRecord, OperationState
from codebeaker.v1 import execution_pb2 as pb

PREFIX = "operations/"
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_STATES = {
    OperationState.QUEUED: pb.EXECUTION_STATE_QUEUED,
    OperationState.RUNNING: pb.EXECUTION_STATE_RUNNING,
    OperationState.SUCCEEDED: pb.EXECUTION_STATE_SUCCEEDED,
    OperationState.FAILED: pb.EXECUTION_STATE_FAILED,
    OperationState.CANCELLED: pb.EXECUTION_STATE_CANCELLED,
}
_TERM = re.compile(r"^\s*(state|done)\s*(!=|=)\s*([A-Za-z_]+)\s*$", re.IGNORECASE)


def operation_id(name: str, field: str = "name") -> str:
    """The id in `operations/{id}`; INVALID_ARGUMENT naming `field` for anything else."""
    id = name[len(PREFIX) :] if name.startswith(PREFIX) else ""
    if not _ID.match(id):
        raise InvalidRequest(
            field,
            f"{name[:80]!r} is not an operation name (operations/ID)",
            reason=Reason.VALUE_INVALID,
        )
    return id


def execution_id(record: OperationRecord) -> str:
    """The execution id of the record's latest attempt ("" before the first)."""
    return f"{record.id}-{record.attempts}" if record.attempts else ""


def operation_message(record: OperationRecord, language: str = "") -> operations_pb2.Operation:
    metadata = pb.ExecutionMetadata(
        state=_STATES[record.state],
        create_time=_timestamp(record.create_time),
        attempts=record.attempts,
        execution_id=execution_id(record),
        request_id=record.request_id,
        language=language,
        cancel_requested=record.cancel_requested,
    )
    if record.start_time is not None:
        metadata.start_time.CopyFrom(_timestamp(record.start_time))
    if record.end_time is not None:
        metadata.end_time.CopyFrom(_timestamp(record.end_time))
    operation = operations_pb2.Operation(name=record.name, done=record.done)
    operation.metadata.Pack(metadata)
    if record.state is OperationState.SUCCEEDED:
        response = pb.ExecuteResponse()
        response.ParseFromString(record.result or b"")
        operation.response.Pack(response)
    elif record.done:
        operation.error.CopyFrom(error_status(record))
    return operation


def error_status(record: OperationRecord) -> status_pb2.Status:
    """The google.rpc.Status of a FAILED or CANCELLED record."""
    if record.error is not None:
        status = status_pb2.Status()
        status.ParseFromString(record.error)
        return status
    if record.state is OperationState.CANCELLED:
        return _status(grpc.StatusCode.CANCELLED, "the operation was cancelled", Reason.CANCELLED)
    return _status(
        grpc.StatusCode.ABORTED,
        f"the execution ended its worker {record.attempts} times (the server running it "
        "stopped or was killed each time); it is not tried again",
        Reason.ATTEMPTS_EXHAUSTED,
    )


def failure_status(error: CodeBeakerError) -> bytes:
    """A domain error as the serialized google.rpc.Status a FAILED record keeps."""
    status: status_pb2.Status = rich_status(status_for(error), str(error), details_for(error))
    encoded: bytes = status.SerializeToString()
    return encoded


def cancelled_status(message: str) -> bytes:
    encoded: bytes = _status(
        grpc.StatusCode.CANCELLED, message, Reason.CANCELLED
    ).SerializeToString()
    return encoded


def _status(code: grpc.StatusCode, message: str, reason: str) -> status_pb2.Status:
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)
    status: status_pb2.Status = rich_status(code, message, [info])
    return status


def parse_filter(text: str) -> frozenset[OperationState] | None:
    """The states a filter selects; None for an empty filter (all)."""
    if not text.strip():
        return None
    selected: set[OperationState] = set()
    for conjunction in re.split(r"\s+OR\s+", text.strip(), flags=re.IGNORECASE):
        states = set(OperationState)
        for term in re.split(r"\s+AND\s+", conjunction, flags=re.IGNORECASE):
            states &= _term(term, text)
        selected |= states
    return frozenset(selected)


def _term(term: str, text: str) -> set[OperationState]:
    match = _TERM.match(term)
    if match is None:
        raise _bad_filter(text, f"cannot read {term.strip()!r}")
    key, operator, value = match.group(1).lower(), match.group(2), match.group(3).upper()
    if key == "state":
        name = value.removeprefix("EXECUTION_STATE_")
        if name not in OperationState.__members__:
            known = ", ".join(OperationState.__members__)
            raise _bad_filter(text, f"unknown state {match.group(3)!r} (known: {known})")
        chosen = {OperationState[name]}
    else:
        if value not in ("TRUE", "FALSE"):
            raise _bad_filter(text, f"done is true or false, not {match.group(3)!r}")
        chosen = set(DONE_STATES) if value == "TRUE" else set(OperationState) - DONE_STATES
    return chosen if operator == "=" else set(OperationState) - chosen


def _bad_filter(text: str, problem: str) -> InvalidRequest:
    return InvalidRequest(
        "filter",
        f"{problem} in {text[:200]!r}; a filter is terms like 'state = QUEUED' or 'done = true' "
        "joined by AND / OR",
        reason=Reason.VALUE_INVALID,
    )


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(round(seconds * 1e9))
    return stamp


__all__ = [
    "PREFIX",
    "cancelled_status",
    "error_status",
    "execution_id",
    "failure_status",
    "operation_id",
    "operation_message",
    "parse_filter",
]
