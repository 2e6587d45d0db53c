"""Per-RPC telemetry: a server span continuing the caller's trace, and the gRPC metrics.

One interceptor, outside the error interceptor (which stays the one place
that turns exceptions into status codes): by the time a call leaves it, the
status is decided, and this interceptor only reads it. Every RPC counts in
`grpc_server_*`; ExecutionService's RPCs also get a SERVER span, a child of
the W3C `traceparent` the caller sent in its metadata (the SDK's client span,
or any OpenTelemetry gRPC instrumentation over plain stubs). The span is
ERROR only for the codes that mean the service failed (OpenTelemetry's gRPC
conventions): a verdict, however bad, is an OK RPC; a caller's mistake or a
full server is not the service's failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from grpc import aio
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from codebeaker.server.errors import OUR_METHODS
from codebeaker.server.metrics import Metrics

_tracer = trace.get_tracer("codebeaker.server")
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


@dataclass(frozen=True)
class Rpc:
    """What one RPC is, for labels and span names."""

    kind: str  # unary, server_stream, client_stream, bidi_stream
    service: str
    method: str
    traced: bool

    @staticmethod
    def of(full_method: str, handler: grpc.RpcMethodHandler) -> Rpc:
        service, _, method = full_method.lstrip("/").rpartition("/")
        streams = (handler.request_streaming, handler.response_streaming)
        kind = {
            (False, False): "unary",
            (False, True): "server_stream",
            (True, False): "client_stream",
            (True, True): "bidi_stream",
        }[streams]
        return Rpc(kind, service, method, full_method.startswith(OUR_METHODS))


def _status_of(context: aio.ServicerContext, error: BaseException | None) -> grpc.StatusCode:
    if isinstance(error, asyncio.CancelledError):
        remaining = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


class TelemetryInterceptor(aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    @contextlib.contextmanager
    def _observe(self, rpc: Rpc, context: aio.ServicerContext) -> Iterator[None]:
        self._metrics.rpc_start(rpc.kind, rpc.service, rpc.method)
        started = time.perf_counter()
        span_scope = self._span(rpc, context) if rpc.traced else contextlib.nullcontext(None)
        with span_scope as span:
            error: BaseException | None = None
            try:
                yield
            except BaseException as caught:
                error = caught
                raise
            finally:
                code = _status_of(context, error)
                self._metrics.rpc_end(
                    rpc.kind, rpc.service, rpc.method, code.name, time.perf_counter() - started
                )
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in SERVER_FAULTS:
                        span.set_status(Status(StatusCode.ERROR, code.name))

    def _span(
        self, rpc: Rpc, context: aio.ServicerContext
    ) -> contextlib.AbstractContextManager[Span]:
        carrier = {
            key: value
            for key, value in (context.invocation_metadata() or ())
            if isinstance(value, str)
        }
        return _tracer.start_as_current_span(
            f"{rpc.service}/{rpc.method}",
            context=propagate.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": rpc.service,
                "rpc.method": rpc.method,
            },
            record_exception=False,
            set_status_on_exception=False,
        )

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        details: Any,
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        rpc = Rpc.of(details.method, handler)
        for kind, make in _HANDLER_FACTORIES.items():
            behavior = getattr(handler, kind)
            if behavior is not None:
                return make(
                    self._wrap(rpc, behavior),
                    handler.request_deserializer,
                    handler.response_serializer,
                )
        return handler

    def _wrap(self, rpc: Rpc, behavior: Callable[..., Any]) -> Callable[..., Any]:
        """The same kind of callable (response stream or coroutine), observed."""
        observe = self._observe
        if inspect.isasyncgenfunction(behavior):

            async def streaming(request: Any, context: aio.ServicerContext) -> AsyncIterator[Any]:
                with observe(rpc, context):
                    async for response in behavior(request, context):
                        yield response

            return streaming

        # A coroutine: a unary answer, or a stream written with context.write().
        async def answering(request: Any, context: aio.ServicerContext) -> Any:
            with observe(rpc, context):
                return await behavior(request, context)

        return answering


_HANDLER_FACTORIES = {
    "unary_unary": grpc.unary_unary_rpc_method_handler,
    "unary_stream": grpc.unary_stream_rpc_method_handler,
    "stream_unary": grpc.stream_unary_rpc_method_handler,
    "stream_stream": grpc.stream_stream_rpc_method_handler,
}
