"""Exceptions of the SDK, and the one place that maps gRPC failures onto them.

What the program did is data (an `ExecutionResult`); these are about the
request and the service. Callers catch a small typed hierarchy instead of
`grpc.RpcError`, whichever client (sync or asyncio) and whenever (call time or
mid-stream) the failure happened: both clients wrap every RPC in
`translate_rpc_errors()`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from typing import ClassVar, Protocol

import grpc

RETRY_AFTER_KEY = "retry-after"
"""Trailing-metadata key in which the server may suggest when to retry (seconds)."""


class CodeBeakerError(Exception):
    """Base of every error the SDK raises about a request or the service.

    `code` is the gRPC status name (e.g. "INVALID_ARGUMENT"); `details` is the
    server's message.
    """

    default_code: ClassVar[str] = "UNKNOWN"

    def __init__(self, details: str, *, code: str | None = None) -> None:
        self.code = code or self.default_code
        self.details = details
        super().__init__(f"{self.code}: {details}")


class InvalidArgumentError(CodeBeakerError):
    """The server will not run this request; the message names the field."""

    default_code = "INVALID_ARGUMENT"


class ResourceExhaustedError(CodeBeakerError):
    """The server has no capacity now; `retry_after` (seconds) is its hint, if any."""

    default_code = "RESOURCE_EXHAUSTED"

    def __init__(
        self, details: str, *, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(details, code=code)
        self.retry_after = retry_after


class UnavailableError(CodeBeakerError):
    """The service (or its container engine) cannot be reached; nothing ran."""

    default_code = "UNAVAILABLE"


class DeadlineExceededError(CodeBeakerError):
    """The call's deadline passed before the server answered."""

    default_code = "DEADLINE_EXCEEDED"


class ExecutionCancelledError(CodeBeakerError):
    """The RPC was cancelled (named so as not to shadow asyncio.CancelledError)."""

    default_code = "CANCELLED"


class ServiceError(CodeBeakerError):
    """Any other failure: an unexpected status or a broken response stream."""


_BY_CODE: dict[str, type[CodeBeakerError]] = {
    "INVALID_ARGUMENT": InvalidArgumentError,
    "RESOURCE_EXHAUSTED": ResourceExhaustedError,
    "UNAVAILABLE": UnavailableError,
    "DEADLINE_EXCEEDED": DeadlineExceededError,
    "CANCELLED": ExecutionCancelledError,
}


class _StatusCode(Protocol):
    @property
    def name(self) -> str: ...


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


def error_from_rpc(error: _FailedCall) -> CodeBeakerError:
    """The SDK exception for a failed RPC."""
    code = error.code().name
    details = error.details() or ""
    kind = _BY_CODE.get(code, ServiceError)
    if kind is ResourceExhaustedError:
        return ResourceExhaustedError(details, code=code, retry_after=_retry_after(error))
    return kind(details, code=code)


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
