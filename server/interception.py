"""One base for our server interceptors, whatever the kind of RPC.

A grpc.aio interceptor is not handed the call: it is handed the method's handler
and may return another one. Wrapping the call therefore means rebuilding the
handler around its behaviour, and the behaviour comes in several shapes: one
request or an async iterator of them (four kinds of RPC), answered by a
coroutine function (a unary response, or a stream written with
`context.write()`) or by an async generator function (a response stream).
Each interceptor that did this by hand covered the shapes it happened to meet,
and the error interceptor let client-streaming and bidi calls through
unmapped. Here it is done once: a subclass writes one hook, `intercept`, an
async context manager that encloses the whole call for every kind, and sees
every exception the call ends with.
"""

from __future__ import annotations

import abc
import contextlib
import inspect
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc
from grpc import aio

Req = TypeVar("Req")
Resp = TypeVar("Resp")
_In = TypeVar("_In")  # what grpc passes the behaviour first: a request, its bytes, or a stream


@dataclass(frozen=True)
class Method:
    """The RPC a handler serves: its full name and the shape of its messages."""

    name: str  # "/package.Service/Method"
    request_streaming: bool
    response_streaming: bool


class Interceptor(aio.ServerInterceptor):
    """Runs `intercept` around every call of the methods it `intercepts`."""

    def intercepts(self, method: Method) -> bool:
        """Whether to wrap this method at all; the others keep their handler untouched."""
        return True

    @abc.abstractmethod
    def intercept(
        self, method: Method, context: aio.ServicerContext[Req, Resp]
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """Encloses one whole call: entered before the behaviour runs, left when it is done.

        The block raises whatever the call ends with: an exception of the
        behaviour (before its first response or mid-stream), of the request
        stream as the behaviour reads it, of a request that did not parse,
        `aio.AbortError` once a status was sent with `context.abort()`,
        `asyncio.CancelledError` when the caller cancelled or the deadline
        passed, `GeneratorExit` when grpc gave up a response stream. Re-raise
        what you do not handle. Swallowing one ends the call with no further
        response and the status set on `context` (so set one that is not OK).
        """

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Req, Resp] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Req, Resp] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = Method(
            handler_call_details.method, handler.request_streaming, handler.response_streaming
        )
        if not self.intercepts(method):
            return handler
        return self._wrap_handler(method, handler)

    def _wrap_handler(
        self, method: Method, handler: grpc.RpcMethodHandler[Req, Resp]
    ) -> grpc.RpcMethodHandler[Req, Resp]:
        deserialize = handler.request_deserializer
        if deserialize is not None:
            deserialize = _raising_unparsable(deserialize)
        if method.request_streaming or deserialize is None:
            # A stream's messages are parsed as the behaviour reads them: inside the call already.
            wrapped = self._wrap(method, handler, _as_is)
            return _rebuild(handler, method, wrapped, deserialize)
        # grpc parses a lone request before it calls the behaviour, where no interceptor
        # sees it fail; so grpc is given no parser, and the call parses the bytes itself.
        parsing = self._wrap(method, handler, deserialize)
        return _rebuild(handler, method, parsing, None)

    def _wrap(
        self,
        method: Method,
        handler: grpc.RpcMethodHandler[Req, Resp],
        prepare: Callable[[_In], object],
    ) -> Callable[[_In, aio.ServicerContext[Req, Resp]], object] | None:
        """The same kind of callable as the handler's behaviour, inside `intercept`;
        None if the behaviour is not async."""
        intercept = self.intercept
        behaviour = _behaviour(handler)
        # grpc's stubs type behaviours as the synchronous server's; grpc.aio tells them
        # apart with inspect, so this does too.
        if inspect.isasyncgenfunction(behaviour):
            stream: Callable[[object, aio.ServicerContext[Req, Resp]], AsyncGenerator[Resp]]
            stream = behaviour

            async def streaming(
                request: _In, context: aio.ServicerContext[Req, Resp]
            ) -> AsyncGenerator[Resp]:
                # Entered in order: the request is parsed and the behaviour started inside
                # the hook. The behaviour's generator is closed here, not by the garbage
                # collector, if grpc gives up on the stream: its cleanup is part of the call.
                async with (
                    intercept(method, context),
                    contextlib.aclosing(stream(prepare(request), context)) as responses,
                ):
                    async for response in responses:
                        yield response

            return streaming
        if inspect.iscoroutinefunction(behaviour):
            answer: Callable[[object, aio.ServicerContext[Req, Resp]], Awaitable[object]]
            answer = behaviour

            async def answering(request: _In, context: aio.ServicerContext[Req, Resp]) -> object:
                async with intercept(method, context):
                    return await answer(prepare(request), context)
                return None  # `intercept` swallowed the exception: its status stands

            return answering
        # A synchronous behaviour runs in grpc's thread pool, out of an async hook's reach.
        return None


def _behaviour(handler: grpc.RpcMethodHandler[Req, Resp]) -> object:
    """The callable grpc will run: it picks it by the two flags, and so do we."""
    if handler.request_streaming:
        return handler.stream_stream if handler.response_streaming else handler.stream_unary
    return handler.unary_stream if handler.response_streaming else handler.unary_unary


def _rebuild(
    handler: grpc.RpcMethodHandler[Req, Resp],
    method: Method,
    behaviour: Callable[[_In, aio.ServicerContext[Req, Resp]], object] | None,
    deserialize: Callable[[bytes], Req] | None,
) -> grpc.RpcMethodHandler[Req, Resp]:
    if behaviour is None:
        return handler
    serialize = handler.response_serializer
    if method.request_streaming and method.response_streaming:
        return grpc.stream_stream_rpc_method_handler(behaviour, deserialize, serialize)
    if method.request_streaming:
        return grpc.stream_unary_rpc_method_handler(behaviour, deserialize, serialize)
    if method.response_streaming:
        return grpc.unary_stream_rpc_method_handler(behaviour, deserialize, serialize)
    return grpc.unary_unary_rpc_method_handler(behaviour, deserialize, serialize)


def _as_is(request: object) -> object:
    return request


class UnparsableRequest(Exception):
    """A request message's bytes did not parse: the caller's fault. Raised inside
    the call (whichever interceptor parses it), so `intercept` sees it; grpc's
    framework would otherwise answer UNKNOWN before any interceptor ran."""


def _raising_unparsable(deserialize: Callable[[bytes], Req]) -> Callable[[bytes], Req]:
    def parse(data: bytes) -> Req:
        try:
            return deserialize(data)
        except UnparsableRequest:
            raise
        except Exception as error:  # DecodeError and friends: the bytes are the caller's fault
            raise UnparsableRequest(str(error) or type(error).__name__) from error

    return parse
