"""Exceptions of the SDK, and the one place that maps gRPC failures onto them.

What the program did is data (an `ExecutionResult`); these are about the
request and the service. Callers catch a small typed hierarchy instead of
`grpc.RpcError`, whichever client (sync or asyncio) and whenever (call time or
mid-stream) the failure happened: both clients wrap every RPC in
`translate_rpc_errors()`.

The server attaches `google.rpc.Status` details to its errors (AIP-193); they
are decoded here into plain attributes, so a caller branches on `.reason`
(stable words such as "LANGUAGE_UNKNOWN") and `.field_violations` instead of
parsing messages. A server or proxy that sends no details leaves them empty.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import ClassVar, NamedTuple, Protocol

import grpc
from google.protobuf.message import DecodeError

# Neither ships a py.typed marker (googleapis-common-protos has .pyi files mypy can follow
# once told to); what they give is read into typed values in `_decoded`.
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

RETRY_AFTER_KEY = "retry-after"
"""Trailing-metadata key in which the server may suggest when to retry (seconds).

Older servers send only this; current ones also send `google.rpc.RetryInfo`,
which wins when both are there."""

DOMAIN = "codebeaker"
"""`ErrorInfo.domain` of the reasons CodeBeaker defines."""


class FieldViolation(NamedTuple):
    """One field of the request the server refused, and why (`BadRequest.field_violations`).

    `field` is a path into the request, e.g. "spec.files[3].path"; "" for the
    request as a whole (it did not parse)."""

    field: str
    description: str


class CodeBeakerError(Exception):
    """Base of every error the SDK raises about a request or the service.

    `code` is the gRPC status name (e.g. "INVALID_ARGUMENT"); `details` is the
    server's message, for people. For programs: `reason` is the server's stable
    reason (`google.rpc.ErrorInfo.reason`, e.g. "LIMIT_ABOVE_MAXIMUM"; None if it
    sent none) with its `metadata`; `field_violations` names the refused fields;
    `retry_after` (seconds) is the server's hint of when a retry may succeed.
    """

    default_code: ClassVar[str] = "UNKNOWN"

    def __init__(
        self,
        details: str,
        *,
        code: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, str] | None = None,
        field_violations: Iterable[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.details = details
        self.reason = reason
        self.metadata: Mapping[str, str] = MappingProxyType(dict(metadata or {}))
        self.field_violations = list(field_violations)
        self.retry_after = retry_after
        super().__init__(f"{self.code}: {details}")


class InvalidArgumentError(CodeBeakerError):
    """The server will not run this request; `field_violations` name the fields."""

    default_code = "INVALID_ARGUMENT"


class ResourceExhaustedError(CodeBeakerError):
    """The server (or the caller's quota) has no capacity now; `retry_after` is its hint."""

    default_code = "RESOURCE_EXHAUSTED"


class UnavailableError(CodeBeakerError):
    """The service (or its container engine) cannot be reached; nothing ran."""

    default_code = "UNAVAILABLE"


class DeadlineExceededError(CodeBeakerError):
    """The call's deadline passed before the server answered."""

    default_code = "DEADLINE_EXCEEDED"


class ExecutionCancelledError(CodeBeakerError):
    """The RPC was cancelled (named so as not to shadow asyncio.CancelledError)."""

    default_code = "CANCELLED"


class UnauthenticatedError(CodeBeakerError):
    """The call carried no credentials, or ones the server does not know."""

    default_code = "UNAUTHENTICATED"


class PermissionDeniedError(CodeBeakerError):
    """The caller is known but may not do this."""

    default_code = "PERMISSION_DENIED"


class NotFoundError(CodeBeakerError):
    """No such resource (a session, an operation), or not one of the caller's."""

    default_code = "NOT_FOUND"


class FailedPreconditionError(CodeBeakerError):
    """The resource is not in a state that allows this (e.g. a paused session)."""

    default_code = "FAILED_PRECONDITION"


class ServiceError(CodeBeakerError):
    """Any other failure: an unexpected status or a broken response stream."""


class WaitTimeoutError(DeadlineExceededError, TimeoutError):
    """`Operation.wait(timeout)` gave up: the operation is not done yet (it goes on).

    Also a `TimeoutError`, as `concurrent.futures` and asyncio time out."""


_BY_CODE: dict[str, type[CodeBeakerError]] = {
    kind.default_code: kind
    for kind in (
        InvalidArgumentError,
        ResourceExhaustedError,
        UnavailableError,
        DeadlineExceededError,
        ExecutionCancelledError,
        UnauthenticatedError,
        PermissionDeniedError,
        NotFoundError,
        FailedPreconditionError,
    )
}


class _StatusCode(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def value(self) -> tuple[int, str]: ...


class _Metadatum(Protocol):
    """A metadata entry as grpc's stubs type the sync RpcError's (a namedtuple, in fact)."""

    @property
    def key(self) -> str: ...

    @property
    def value(self) -> str | bytes: ...


class _FailedCall(Protocol):
    """What both grpc.RpcError (sync) and grpc.aio.AioRpcError offer."""

    def code(self) -> _StatusCode: ...

    def details(self) -> str | None: ...

    def trailing_metadata(self) -> Iterable[tuple[str, str | bytes] | _Metadatum] | None: ...


class _Details(NamedTuple):
    """What the `google.rpc.Status` details of a failed call say, as plain values."""

    reason: str | None = None
    metadata: Mapping[str, str] = MappingProxyType({})
    field_violations: tuple[FieldViolation, ...] = ()
    retry_after: float | None = None


def error_from_rpc(error: _FailedCall) -> CodeBeakerError:
    """The SDK exception for a failed RPC."""
    code = error.code().name
    found = _decoded(error)
    retry_after = found.retry_after if found.retry_after is not None else _retry_after(error)
    return _BY_CODE.get(code, ServiceError)(
        error.details() or "",
        code=code,
        reason=found.reason,
        metadata=found.metadata,
        field_violations=found.field_violations,
        retry_after=retry_after,
    )


@contextlib.contextmanager
def translate_rpc_errors() -> Iterator[None]:
    """Re-raise any gRPC failure inside the block as a `CodeBeakerError`."""
    try:
        yield
    except grpc.RpcError as error:
        if not callable(getattr(error, "code", None)):
            # A bare RpcError that is not also a Call carries no status.
            raise ServiceError(str(error) or type(error).__name__) from error
        raise error_from_rpc(error) from error


class AnyMessage(Protocol):
    """A `google.protobuf.Any`, as read by the SDK."""

    def Is(self, descriptor: object) -> bool: ...

    def Unpack(self, message: object) -> bool: ...


class RpcStatus(Protocol):
    """A `google.rpc.Status` message (googleapis-common-protos is not typed), as read here."""

    @property
    def code(self) -> int: ...

    @property
    def message(self) -> str: ...

    @property
    def details(self) -> Iterable[AnyMessage]: ...


_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


def error_from_status(status: RpcStatus) -> CodeBeakerError:
    """The SDK exception for a `google.rpc.Status` message, e.g. a failed operation's
    `error`: the same class, reason and details as a call failing with it."""
    code = _CODE_NAMES.get(int(status.code), "UNKNOWN")
    found = _details_of(status)
    return _BY_CODE.get(code, ServiceError)(
        str(status.message),
        code=code,
        reason=found.reason,
        metadata=found.metadata,
        field_violations=found.field_violations,
        retry_after=found.retry_after,
    )


def _decoded(error: _FailedCall) -> _Details:
    """The details in the call's `grpc-status-details-bin` trailer; none if absent or broken.

    A status whose code or message differs from the call's own (a proxy
    rewrote one) is not believed: its details may be about something else.
    """
    try:
        status = rpc_status.from_call(error)
    except (ValueError, DecodeError):
        return _Details()
    if status is None:
        return _Details()
    return _details_of(status)


def _details_of(status: RpcStatus) -> _Details:
    infos: list[tuple[str, str, dict[str, str]]] = []
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append((str(info.domain), str(info.reason), dict(info.metadata)))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            violations += [
                FieldViolation(str(v.field), str(v.description)) for v in bad.field_violations
            ]
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            seconds = float(retry.retry_delay.ToNanoseconds()) / 1e9
            retry_after = seconds if math.isfinite(seconds) and seconds >= 0 else None
    # Ours first: a proxy on the way may add an ErrorInfo of its own domain.
    infos.sort(key=lambda found: found[0] != DOMAIN)
    reason, metadata = (infos[0][1] or None, infos[0][2]) if infos else (None, {})
    return _Details(reason, MappingProxyType(metadata), tuple(violations), retry_after)


def _retry_after(error: _FailedCall) -> float | None:
    for entry in error.trailing_metadata() or ():
        key, value = entry if isinstance(entry, tuple) else (entry.key, entry.value)
        if key.lower() != RETRY_AFTER_KEY:
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        try:
            seconds = float(text.strip())
        except ValueError:
            return None
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    return None
