"""Structured log lines (JSON and console) with trace ids, and tracing set up from OTEL_*."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import AsyncClient
from codebeaker.server import logs, tracing
from codebeaker.server.config import parse_config
from tests.unit.conftest import Running


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The process's log lines, as `codebeaker serve --log-format json` writes them."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    logs.configure("info", "json", stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_fields_and_the_current_trace(
    captured: io.StringIO, spans: InMemorySpanExporter
) -> None:
    log = logging.getLogger("codebeaker.test")
    with trace.get_tracer("test").start_as_current_span("call") as span:
        logs.event(log, logging.INFO, "thing.happened", "it happened", size=3, ratio=0.5)
    log.warning("plain %s", "message")
    first, second = lines(captured)
    context = span.get_span_context()
    assert first["event"] == "thing.happened"
    assert first["message"] == "it happened"
    assert first["level"] == "info"
    assert first["logger"] == "codebeaker.test"
    assert (first["size"], first["ratio"]) == (3, 0.5)
    assert first["trace_id"] == f"{context.trace_id:032x}"
    assert first["span_id"] == f"{context.span_id:016x}"
    assert str(first["time"]).endswith("Z")
    assert second["event"] == "log" and second["message"] == "plain message"
    assert "trace_id" not in second


def test_the_console_format_is_one_readable_line() -> None:
    stream = io.StringIO()
    handler = logs.configure("info", "console", stream)
    root = logging.getLogger()
    try:
        logs.event(
            logging.getLogger("x"), logging.INFO, "e", "execution 1 finished: ok", wall=0.01234
        )
    finally:
        root.removeHandler(handler)
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "INFO" in line and "execution 1 finished: ok" in line and "wall=0.01234" in line


async def test_each_execution_logs_one_json_line_with_the_callers_trace(
    running: Running, captured: io.StringIO, spans: InMemorySpanExporter
) -> None:
    async with AsyncClient(f"127.0.0.1:{running.app.port}") as client:
        result = await client.execute("python", "out SECRET-PROGRAM-OUTPUT\nexit 3")
        with pytest.raises(Exception, match="INVALID_ARGUMENT"):
            await client.execute("cobol", "out x")  # refused before it is an execution
    (call,) = [
        s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT and s.status.is_ok
    ]
    assert call.context is not None
    executions = [line for line in lines(captured) if str(line["event"]).startswith("execution.")]
    assert len(executions) == 1
    (line,) = executions
    assert line["event"] == "execution.finished"
    assert line["execution_id"] == result.execution_id
    assert line["trace_id"] == f"{call.context.trace_id:032x}"
    assert line["language"] == "python"
    assert line["verdict"] == "runtime_error"
    assert line["exit_code"] == 3
    assert isinstance(line["duration_seconds"], float)
    assert isinstance(line["phases"], dict) and "admission" in line["phases"]
    assert "SECRET-PROGRAM-OUTPUT" not in captured.getvalue()


async def test_a_failed_execution_is_one_warning_line(
    running: Running, captured: io.StringIO
) -> None:
    async with AsyncClient(f"127.0.0.1:{running.app.port}") as client:
        with pytest.raises(Exception, match="UNAVAILABLE"):
            await client.execute("python", "raise unavailable")
    (line,) = [line for line in lines(captured) if str(line["event"]).startswith("execution.")]
    assert line["event"] == "execution.failed"
    assert line["level"] == "warning"
    assert "EngineUnavailable" in str(line["error"])


def test_log_settings_are_validated() -> None:
    assert parse_config(["--log-format", "console"], {}).service.log_format == "console"
    with pytest.raises(ValueError, match="log_format"):
        parse_config(["--log-format", "xml"], {})
    with pytest.raises(ValueError, match="log_level"):
        parse_config([], {"CODEBEAKER_LOG_LEVEL": "chatty"})
    with pytest.raises(ValueError, match="host:port"):
        parse_config(["--metrics-address", "9464"], {})


@pytest.mark.parametrize(
    ("environ", "exporter"),
    [
        ({}, "none"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}, "otlp"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4317"}, "otlp"),
        ({"OTEL_TRACES_EXPORTER": "console"}, "console"),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, "none"),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}, "none"),
    ],
)
def test_the_exporter_comes_from_the_standard_variables(
    environ: dict[str, str], exporter: str
) -> None:
    assert tracing.exporter_name(environ) == exporter


def test_no_exporter_means_no_sdk_at_all() -> None:
    assert tracing.tracer_provider({}) is None


def test_an_otlp_endpoint_gets_a_batching_otlp_exporter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    provider = tracing.tracer_provider({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert provider is not None
    try:
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        assert isinstance(processor._batch_processor._exporter, OTLPSpanExporter)
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "codebeaker"
        assert attributes["deployment.environment"] == "test"
        assert attributes["service.version"]
    finally:
        provider.shutdown()


def test_the_service_name_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "beaker-eu-1")
    assert tracing.resource().attributes["service.name"] == "beaker-eu-1"


def test_an_unknown_exporter_is_refused() -> None:
    with pytest.raises(ValueError, match="OTEL_TRACES_EXPORTER"):
        tracing.exporter_name({"OTEL_TRACES_EXPORTER": "zipkin"})
