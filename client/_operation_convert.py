"""Where `google.longrunning.Operation` messages meet the SDK's values.

Both clients (and their `Operation` handles) read operations through these
functions, so the sync and asyncio APIs cannot drift apart and no protobuf
type escapes: an operation is read once into a frozen `Snapshot` (its name,
typed metadata, and the result or the error it ended with), and the outcome
is either the `ExecutionResult` `execute` would have returned or the SDK
error `execute` would have raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from codebeaker.client._convert import result_from_proto
from codebeaker.client.errors import (
    AnyMessage,
    CodeBeakerError,
    RpcStatus,
    ServiceError,
    error_from_status,
)
from codebeaker.client.types import ExecutionResult, OperationMetadata, OperationState
from codebeaker.v1 import execution_pb2 as pb

COLLECTION = "operations"
"""The collection every operation's name is in: `operations/{id}`."""

_STATE_PREFIX = "EXECUTION_STATE_"
_CANCELLED_CODE = 1  # google.rpc.Code.CANCELLED


class OperationMessage(Protocol):
    """The fields of a `google.longrunning.Operation` read here.

    googleapis-common-protos ships no py.typed marker, so its messages are typed
    by what this module reads of them and never handed on."""

    @property
    def name(self) -> str: ...

    @property
    def done(self) -> bool: ...

    @property
    def metadata(self) -> AnyMessage: ...

    @property
    def response(self) -> AnyMessage: ...

    @property
    def error(self) -> RpcStatus: ...

    def HasField(self, field_name: str) -> bool: ...

    def WhichOneof(self, oneof_group: str) -> str | None: ...


class OperationsPage(Protocol):
    """A `google.longrunning.ListOperationsResponse`."""

    @property
    def operations(self) -> Sequence[OperationMessage]: ...

    @property
    def next_page_token(self) -> str: ...


@dataclass(frozen=True)
class Snapshot:
    """One reading of an operation: what the server said at that moment."""

    name: str
    done: bool
    metadata: OperationMetadata
    result: ExecutionResult | None = None
    """The program's verdict, when the operation SUCCEEDED."""
    error: CodeBeakerError | None = None
    """Why the service did not run it (FAILED), or its cancellation (CANCELLED)."""

    @property
    def state(self) -> OperationState:
        return self.metadata.state


def operation_name(name: str) -> str:
    """`operations/{id}` from itself or from the bare id."""
    if not name or name == COLLECTION + "/":
        raise ValueError("an operation name is operations/ID (or ID alone)")
    return name if name.startswith(COLLECTION + "/") else f"{COLLECTION}/{name}"


def snapshot_from_proto(message: OperationMessage) -> Snapshot:
    """Read a `google.longrunning.Operation` of an execution."""
    name = str(message.name)
    done = bool(message.done)
    result: ExecutionResult | None = None
    error: CodeBeakerError | None = None
    if done:
        outcome = message.WhichOneof("result")
        if outcome == "response":
            response = pb.ExecuteResponse()
            if not message.response.Unpack(response):
                error = ServiceError(f"{name}: its response is not an ExecuteResponse")
            else:
                result = result_from_proto(response.result)
        elif outcome == "error":
            error = error_from_status(message.error)
        else:
            error = ServiceError(f"{name}: done without a response or an error")
    return Snapshot(name, done, _metadata(message, error), result, error)


def outcome(snapshot: Snapshot) -> ExecutionResult:
    """The verdict of a done operation, or the error it ended with raised."""
    if snapshot.error is not None:
        raise snapshot.error
    if snapshot.result is None:
        raise ServiceError(f"{snapshot.name} is not done")
    return snapshot.result


def list_filter(state: OperationState | str | None, done: bool | None) -> str:
    """The `ListOperations` filter for a state and/or doneness ("" lists all)."""
    terms: list[str] = []
    if state is not None:
        try:
            chosen = OperationState(str(state).upper())
        except ValueError:
            known = ", ".join(
                s.value for s in OperationState if s is not OperationState.UNSPECIFIED
            )
            raise ValueError(f"unknown operation state {state!r} (known: {known})") from None
        if chosen is OperationState.UNSPECIFIED:
            raise ValueError("UNSPECIFIED is no state to list by")
        terms.append(f"state = {chosen.value}")
    if done is not None:
        terms.append(f"done = {'true' if done else 'false'}")
    return " AND ".join(terms)


def _metadata(message: OperationMessage, error: CodeBeakerError | None) -> OperationMetadata:
    found = pb.ExecutionMetadata()
    if not (message.HasField("metadata") and message.metadata.Unpack(found)):
        return OperationMetadata(state=_inferred_state(bool(message.done), message, error))
    state = _state_from_proto(found.state)
    if state is OperationState.UNSPECIFIED:
        state = _inferred_state(bool(message.done), message, error)
    return OperationMetadata(
        state=state,
        create_time=_time(found.create_time) if found.HasField("create_time") else None,
        start_time=_time(found.start_time) if found.HasField("start_time") else None,
        end_time=_time(found.end_time) if found.HasField("end_time") else None,
        attempts=found.attempts,
        execution_id=found.execution_id,
        request_id=found.request_id,
        language=found.language,
        cancel_requested=found.cancel_requested,
    )


def _inferred_state(
    done: bool, message: OperationMessage, error: CodeBeakerError | None
) -> OperationState:
    """A state from `done` and the outcome, for a server that sent none we know."""
    if not done:
        return OperationState.UNSPECIFIED
    if error is None:
        return OperationState.SUCCEEDED
    if message.WhichOneof("result") == "error" and int(message.error.code) == _CANCELLED_CODE:
        return OperationState.CANCELLED
    return OperationState.FAILED


def _state_from_proto(value: pb.ExecutionState.ValueType) -> OperationState:
    try:
        return OperationState(pb.ExecutionState.Name(value).removeprefix(_STATE_PREFIX))
    except ValueError:
        return OperationState.UNSPECIFIED  # a state added after this SDK was built


def _time(stamp: Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)
