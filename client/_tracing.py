"""A CLIENT span per SDK call, and its W3C trace context in the call's gRPC metadata.

Only the OpenTelemetry API is used: an application that installs an SDK gets
the SDK's calls in its traces, continued by the server into every phase of
the sandbox; one that does not pays for a no-op span and sends no
`traceparent` (unless a span of its own is current, whose context then passes
through). The propagator is the API's global one (W3C trace context and
baggage unless `OTEL_PROPAGATORS` says otherwise). Both clients use this
module, so the sync and asyncio SDKs trace alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import grpc
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from codebeaker.client.errors import CodeBeakerError
from codebeaker.client.types import ExecutionResult
from codebeaker.v1 import execution_pb2, session_pb2

SERVICE = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name
SESSION_SERVICE = session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name
OPERATIONS_SERVICE = "google.longrunning.Operations"
Metadata = tuple[tuple[str, str], ...]

_tracer = trace.get_tracer("codebeaker.client")


class CallSpan:
    """The span of one call: `metadata` goes with the RPC; `end` once, however it ends."""

    def __init__(self, method: str, address: str, service: str = SERVICE) -> None:
        host, _, port = address.rpartition(":")
        self._span = _tracer.start_span(
            f"{service}/{method}",
            kind=SpanKind.CLIENT,
            attributes={
                "rpc.system": "grpc",
                "rpc.service": service,
                "rpc.method": method,
                "server.address": host or address,
                "server.port": int(port) if port.isdigit() else 0,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(self._span))
        self.metadata: Metadata = tuple(carrier.items())
        self._ended = False

    def result(self, result: ExecutionResult) -> None:
        """Record the verdict: data about the program, never a failed span."""
        self._span.set_attributes(
            {
                "codebeaker.execution_id": result.execution_id,
                "codebeaker.status": result.status.name.lower(),
                "codebeaker.exit_code": result.exit_code,
            }
        )

    def operation(self, name: str, state: str) -> None:
        """Record which operation the call was about and the state it answered."""
        self._span.set_attributes(
            {"codebeaker.operation": name, "codebeaker.operation.state": state}
        )

    def session(self, name: str) -> None:
        """Record which session the call was about."""
        self._span.set_attribute("codebeaker.session", name)

    def exec_started(self, exec_id: str) -> None:
        """Record the id of the Exec the call started or follows."""
        self._span.set_attribute("codebeaker.exec_id", exec_id)

    def end(self, error: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if isinstance(error, CodeBeakerError):
            code = grpc.StatusCode.__members__.get(error.code, grpc.StatusCode.UNKNOWN)
            self._span.set_attribute("rpc.grpc.status_code", code.value[0])
            self._span.set_status(Status(StatusCode.ERROR, f"{error.code}: {error.details}"))
        elif isinstance(error, Exception):
            self._span.record_exception(error)
            self._span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        self._span.end()


@contextmanager
def traced_call(method: str, address: str, service: str = SERVICE) -> Iterator[CallSpan]:
    """A unary call's span: ends with the block, failed if the block raises."""
    call = CallSpan(method, address, service)
    try:
        yield call
    except BaseException as error:
        call.end(error)
        raise
    call.end()
