"""Spans leave `codebeaker serve` over OTLP/gRPC, configured only by the standard OTEL_* variables.

The test plays the collector: a gRPC server implementing the OpenTelemetry
collector's trace service (from `opentelemetry-proto`) on a loopback port.
The server exports there because OTEL_EXPORTER_OTLP_ENDPOINT says so; its
spans continue the trace of the SDK call the test makes, and the last ones
(teardown) are flushed when it shuts down on SIGTERM.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as collector
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as collector_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import Client, ExecutionStatus
from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.docker
# On a reusable host (the default isolation): no container is made or removed per run.
PHASES = {"admission", "acquire", "deliver", "run", "collect"}


@dataclass
class Receiver(collector_grpc.TraceServiceServicer):
    """Keeps every exported batch; OTLP's Export is unary."""

    batches: list[collector.ExportTraceServiceRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def Export(
        self, request: collector.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> collector.ExportTraceServiceResponse:
        with self.lock:
            self.batches.append(request)
        return collector.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[dict[str, str], trace_pb2.Span, str]]:
        """(resource attributes, span, instrumentation scope) of everything received."""
        found = []
        with self.lock:
            for batch in self.batches:
                for resource_spans in batch.resource_spans:
                    resource = {
                        a.key: a.value.string_value for a in resource_spans.resource.attributes
                    }
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            found.append((resource, span, scope_spans.scope.name))
        return found


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    servicer = Receiver()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    collector_grpc.add_TraceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(grace=None)


def test_spans_reach_an_otlp_collector_in_the_callers_trace(
    receiver: tuple[Receiver, int], spans: InMemorySpanExporter
) -> None:
    collected, port = receiver
    server = start_server(
        "--hosts-min",
        "1",
        environ={
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=ci-test",
            "OTEL_SERVICE_NAME": "",
        },
    )
    try:
        with Client(server.address, timeout=60) as client:
            result = client.execute("python", "print('over the wire')")
    finally:
        assert stop_server(server) == 0  # shutdown flushes the batch
    assert result.status is ExecutionStatus.OK
    (call,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert call.context is not None
    trace_id = call.context.trace_id.to_bytes(16, "big")

    received = [(r, s, scope) for r, s, scope in collected.spans() if s.trace_id == trace_id]
    names = {span.name for _, span, _ in received}
    assert names >= PHASES | {"codebeaker.v1.ExecutionService/Execute"}, names
    for resource, _, _ in received:
        assert resource["service.name"] == "codebeaker"
        assert resource["deployment.environment"] == "ci-test"
    (rpc,) = [s for _, s, _ in received if s.kind == trace_pb2.Span.SPAN_KIND_SERVER]
    assert rpc.parent_span_id == call.context.span_id.to_bytes(8, "big")
    for _, span, scope in received:
        if span.name in PHASES:
            assert span.parent_span_id == rpc.span_id, span.name
            assert scope == "codebeaker.runtimes"
    (run,) = [s for _, s, _ in received if s.name == "run"]
    attributes = {a.key: a.value for a in run.attributes}
    assert attributes["codebeaker.status"].string_value == "ok"
    assert attributes["codebeaker.exit_code"].int_value == 0
    assert attributes["codebeaker.execution_id"].string_value == result.execution_id
