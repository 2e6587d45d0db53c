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
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import grpc
from grpc import aio
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from codebeaker.server.errors import OUR_METHODS
from codebeaker.server.interception import Interceptor, Method
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
Req = TypeVar("Req")
Resp = TypeVar("Resp")


@dataclass(frozen=True)
class Rpc:
    """What one RPC is, for labels and span names."""

    kind: str  # unary, server_stream, client_stream, bidi_stream
    service: str
    method: str
    traced: bool

    @staticmethod
    def of(method: Method) -> Rpc:
        service, _, name = method.name.lstrip("/").rpartition("/")
        streams = (method.request_streaming, method.response_streaming)
        kind = {
            (False, False): "unary",
            (False, True): "server_stream",
            (True, False): "client_stream",
            (True, True): "bidi_stream",
        }[streams]
        return Rpc(kind, service, name, method.name.startswith(OUR_METHODS))


def final_code(
    context: aio.ServicerContext[Req, Resp], error: BaseException | None
) -> grpc.StatusCode:
    """The status the caller got, read once the call has ended with `error` (or none)."""
    if isinstance(error, asyncio.CancelledError):
        # None without a deadline, whatever the stubs say.
        remaining: float | None = context.time_remaining()
        expired = remaining is not None and remaining <= 0
        return grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED
    # None until the call sets one, whatever the stubs say.
    code: grpc.StatusCode | None = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    return grpc.StatusCode.UNKNOWN if error is not None else grpc.StatusCode.OK


class TelemetryInterceptor(Interceptor):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    @contextlib.asynccontextmanager
    async def intercept(
        self, method: Method, context: aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[None]:
        rpc = Rpc.of(method)
        self._metrics.rpc_start(rpc.kind, rpc.service, rpc.method)
        started = time.perf_counter()
        span_scope = _span(rpc, context) if rpc.traced else contextlib.nullcontext(None)
        with span_scope as span:
            error: BaseException | None = None
            try:
                yield
            except BaseException as caught:
                error = caught
                raise
            finally:
                code = final_code(context, error)
                self._metrics.rpc_end(
                    rpc.kind, rpc.service, rpc.method, code.name, time.perf_counter() - started
                )
                if span is not None:
                    span.set_attribute("rpc.grpc.status_code", code.value[0])
                    if code in SERVER_FAULTS:
                        span.set_status(Status(StatusCode.ERROR, code.name))


def _span(
    rpc: Rpc, context: aio.ServicerContext[Req, Resp]
) -> contextlib.AbstractContextManager[Span]:
    carrier = {
        key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)
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
