"""The one place where exceptions become gRPC status codes: a server interceptor.

What the caller sent wrong is INVALID_ARGUMENT (including a request that is
not a valid protobuf message at all), no capacity or a tenant's quota is
RESOURCE_EXHAUSTED, an unreachable engine is UNAVAILABLE; credentials, tenancy
and resource state are UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND and
FAILED_PRECONDITION. Anything unexpected is logged with its traceback and
becomes INTERNAL without leaking details. This holds for every kind of RPC,
whether the error comes before the first response, mid-stream, or from a
streamed request message.

Each status carries `google.rpc.Status` details in the standard
`grpc-status-details-bin` trailer (AIP-193), so callers branch on data rather
than on message text: always `ErrorInfo{reason, domain: "codebeaker"}`, plus
`BadRequest` naming the field, `RetryInfo` when a retry may succeed, and
`QuotaFailure` naming the tenant. RESOURCE_EXHAUSTED also keeps its older
`retry-after` trailer, which released SDKs and CLIs read.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import NoReturn, TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message

# Neither ships a py.typed marker (googleapis-common-protos has .pyi files mypy can follow
# once told to), so mypy sees them as untyped; what they return is typed where used here.
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.errors import (
    AlreadyExists,
    CapacityExhausted,
    CodeBeakerError,
    FailedPrecondition,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Reason,
    SandboxFailure,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from codebeaker.server.interception import Interceptor, Method, UnparsableRequest

log = logging.getLogger(__name__)
# Health and reflection are grpc's own services; only ours raise domain errors (the
# google.longrunning.Operations service is ours too: it serves this server's operations).
OUR_METHODS = ("/codebeaker.", "/google.longrunning.Operations/")
DOMAIN = "codebeaker"
RETRY_AFTER_KEY = "retry-after"
Req = TypeVar("Req")
Resp = TypeVar("Resp")
_Metadata = tuple[tuple[str, str | bytes], ...]

_CODES: Sequence[tuple[type[CodeBeakerError], grpc.StatusCode]] = (
    (InvalidRequest, grpc.StatusCode.INVALID_ARGUMENT),
    (CapacityExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),  # QuotaExceeded too
    (Unavailable, grpc.StatusCode.UNAVAILABLE),  # EngineUnavailable, the queue store's
    (Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (Unimplemented, grpc.StatusCode.UNIMPLEMENTED),
    (AlreadyExists, grpc.StatusCode.ALREADY_EXISTS),
    (SandboxFailure, grpc.StatusCode.INTERNAL),
)


def status_for(error: CodeBeakerError) -> grpc.StatusCode:
    for kind, code in _CODES:
        if isinstance(error, kind):
            return code
    return grpc.StatusCode.INTERNAL


def details_for(error: CodeBeakerError) -> list[Message]:
    """The `google.rpc` detail messages for a domain error, ErrorInfo first."""
    info = error_details_pb2.ErrorInfo(reason=str(error.reason), domain=DOMAIN)
    details: list[Message] = [info]
    if isinstance(error, InvalidRequest):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=error.field, description=error.problem, reason=str(error.reason)
        )
        details.append(error_details_pb2.BadRequest(field_violations=[violation]))
    if isinstance(error, CapacityExhausted):
        details.append(error_details_pb2.RetryInfo(retry_delay=_duration(error.retry_after)))
    if isinstance(error, QuotaExceeded):
        info.metadata.update(tenant=error.tenant, quota=error.quota)
        quota = error_details_pb2.QuotaFailure.Violation(
            subject=error.tenant, description=str(error), quota_id=error.quota
        )
        details.append(error_details_pb2.QuotaFailure(violations=[quota]))
    if isinstance(error, NotFound):
        info.metadata["resource"] = error.resource
        details.append(error_details_pb2.ResourceInfo(resource_name=error.resource))
    return details


def rich_status(
    code: grpc.StatusCode, message: str, details: Sequence[Message]
) -> status_pb2.Status:
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        status.details.add().Pack(detail)
    return status


def _trailer(status: status_pb2.Status) -> _Metadata:
    """The trailing metadata that carries `status` (grpcio-status' own encoding)."""
    encoded: grpc.Status = rpc_status.to_status(status)
    return tuple(encoded.trailing_metadata)


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return duration


def _refusal(error: Exception) -> tuple[CodeBeakerError, str] | None:
    """The domain error and the message to answer `error` with; None if it is a bug."""
    if isinstance(error, CodeBeakerError):
        return error, str(error)
    if isinstance(error, UnparsableRequest):
        problem = f"not a valid protobuf message: {error}"
        # The whole message is at fault, so the violation names no field ("").
        return (
            InvalidRequest("", problem, reason=Reason.REQUEST_UNPARSABLE),
            f"the request is {problem}",
        )
    return None


async def _abort(
    context: aio.ServicerContext[Req, Resp], error: Exception, method: str
) -> NoReturn:
    refusal = _refusal(error)
    if refusal is None:
        log.exception("%s failed unexpectedly", method, exc_info=error)
        info = error_details_pb2.ErrorInfo(reason=Reason.INTERNAL, domain=DOMAIN)
        message = "internal error; see the server log"
        status = rich_status(grpc.StatusCode.INTERNAL, message, [info])
        await context.abort(grpc.StatusCode.INTERNAL, message, _trailer(status))
    domain, message = refusal
    code = status_for(domain)
    if code is grpc.StatusCode.INTERNAL:
        log.error("%s failed: %s", method, domain)
    trailer = _trailer(rich_status(code, message, details_for(domain)))
    if isinstance(domain, CapacityExhausted):
        trailer += ((RETRY_AFTER_KEY, f"{domain.retry_after:g}"),)
    await context.abort(code, message, trailer)


class ErrorInterceptor(Interceptor):
    def intercepts(self, method: Method) -> bool:
        return method.name.startswith(OUR_METHODS)

    @contextlib.asynccontextmanager
    async def intercept(
        self, method: Method, context: aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[None]:
        try:
            yield
        except aio.AbortError:  # the status is sent already
            raise
        except Exception as error:  # not CancelledError: a cancelled call has no one to answer
            await _abort(context, error, method.name)
