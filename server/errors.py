"""The one place where exceptions become gRPC status codes: a server interceptor.

What the caller sent wrong is INVALID_ARGUMENT (including a request that is
not a valid protobuf message at all), no capacity is
RESOURCE_EXHAUSTED (with a `retry-after` hint in trailing metadata), an
unreachable engine is UNAVAILABLE. Anything unexpected is logged with its
traceback and becomes INTERNAL without leaking details. This holds for every
kind of RPC, whether the error comes before the first response, mid-stream, or
from a streamed request message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import NoReturn, TypeVar

import grpc
from grpc import aio

from codebeaker.runtimes.errors import (
    CapacityExhausted,
    CodeBeakerError,
    EngineUnavailable,
    InvalidRequest,
    SandboxFailure,
)
from codebeaker.server.interception import Interceptor, Method

log = logging.getLogger(__name__)
# Health and reflection are grpc's own services; only ours raise domain errors.
OUR_METHODS = "/codebeaker."
Req = TypeVar("Req")
Resp = TypeVar("Resp")


def status_for(error: CodeBeakerError) -> grpc.StatusCode:
    if isinstance(error, InvalidRequest):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, CapacityExhausted):
        return grpc.StatusCode.RESOURCE_EXHAUSTED
    if isinstance(error, EngineUnavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, SandboxFailure):
        return grpc.StatusCode.INTERNAL
    return grpc.StatusCode.INTERNAL


class Unparsable(Exception):
    """A request message's bytes did not parse: the caller's fault, not grpc's
    framework's to answer (it would say UNKNOWN), so the call answers it."""


def _raising_unparsable(deserialize: Callable[[bytes], Req]) -> Callable[[bytes], Req]:
    def parse(data: bytes) -> Req:
        try:
            return deserialize(data)
        except Exception as error:  # DecodeError and friends: the bytes are the caller's fault
            raise Unparsable(str(error) or type(error).__name__) from error

    return parse


async def _abort(
    context: aio.ServicerContext[Req, Resp], error: Exception, method: str
) -> NoReturn:
    if isinstance(error, Unparsable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid protobuf message: {error}",
        )
    if isinstance(error, CodeBeakerError):
        code = status_for(error)
        if isinstance(error, CapacityExhausted):
            context.set_trailing_metadata((("retry-after", f"{error.retry_after:g}"),))
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method, error)
        await context.abort(code, str(error))
    log.exception("%s failed unexpectedly", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


class ErrorInterceptor(Interceptor):
    def intercepts(self, method: Method) -> bool:
        return method.name.startswith(OUR_METHODS)

    def request_deserializer(
        self, method: Method, deserialize: Callable[[bytes], Req]
    ) -> Callable[[bytes], Req]:
        return _raising_unparsable(deserialize)

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
