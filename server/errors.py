"""The one place where exceptions become gRPC status codes: a server interceptor.

What the caller sent wrong is INVALID_ARGUMENT (including a request that is
not a valid protobuf message at all), no capacity is
RESOURCE_EXHAUSTED (with a `retry-after` hint in trailing metadata), an
unreachable engine is UNAVAILABLE. Anything unexpected is logged with its
traceback and becomes INTERNAL without leaking details.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from grpc import aio

from codebeaker.runtimes.errors import (
    CapacityExhausted,
    CodeBeakerError,
    EngineUnavailable,
    InvalidRequest,
    SandboxFailure,
)

log = logging.getLogger(__name__)
# Health and reflection are grpc's own services; only ours raise domain errors.
OUR_METHODS = "/codebeaker."


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


class Unparsable:
    """Stands in for a request message that did not parse, so that the handler,
    not grpc's framework, answers it (with INVALID_ARGUMENT)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _lenient(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserialize is None:
        return None

    def parse(data: bytes) -> Any:
        try:
            return deserialize(data)
        except Exception as error:  # DecodeError and friends: the bytes are the caller's fault
            return Unparsable(str(error) or type(error).__name__)

    return parse


async def _refuse_unparsable(request: Any, context: aio.ServicerContext) -> None:
    if isinstance(request, Unparsable):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"the request is not a valid protobuf message: {request.reason}",
        )


async def _abort(context: aio.ServicerContext, error: Exception, method: str) -> None:
    if isinstance(error, CodeBeakerError):
        code = status_for(error)
        if isinstance(error, CapacityExhausted):
            context.set_trailing_metadata((("retry-after", f"{error.retry_after:g}"),))
        if code is grpc.StatusCode.INTERNAL:
            log.error("%s failed: %s", method, error)
        await context.abort(code, str(error))
    log.exception("%s failed unexpectedly", method, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")


class ErrorInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: Any,
    ) -> Any:
        handler = await continuation(details)
        method = details.method
        if handler is None or not method.startswith(OUR_METHODS):
            return handler
        if handler.unary_unary:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: aio.ServicerContext) -> Any:
                await _refuse_unparsable(request, context)
                try:
                    return await inner_unary(request, context)
                except aio.AbortError:
                    raise
                except Exception as error:
                    await _abort(context, error, method)

            return grpc.unary_unary_rpc_method_handler(
                unary, _lenient(handler.request_deserializer), handler.response_serializer
            )
        if handler.unary_stream:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                await _refuse_unparsable(request, context)
                try:
                    async for response in inner_stream(request, context):
                        yield response
                except aio.AbortError:
                    raise
                except Exception as error:
                    await _abort(context, error, method)

            return grpc.unary_stream_rpc_method_handler(
                stream, _lenient(handler.request_deserializer), handler.response_serializer
            )
        return handler
