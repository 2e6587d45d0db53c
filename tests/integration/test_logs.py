"""`codebeaker serve --log-format json`: every line is JSON, executions carry the caller's trace.

A real server process over Docker, with no tracing SDK of its own (no OTEL_*
exporter): the trace id in its log lines is the one the SDK call sent in
`traceparent`. At debug level, nothing the program writes (to its stdout, its
stderr, or attempts at the supervisor's own descriptors) reaches the log.
"""

from __future__ import annotations

import json
import time

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import Client, ExecutionStatus
from tests.integration.conftest import start_server, stop_server

pytestmark = pytest.mark.docker
MARKER = "PROGRAM-BYTES-7f3a"
PROGRAM = f"""
import sys
print("{MARKER} on stdout")
print("{MARKER} on stderr", file=sys.stderr)
for fd in (1, 2):  # the supervisor's own stdout and stderr
    try:
        with open(f"/proc/1/fd/{{fd}}", "w") as supervisor:
            supervisor.write("{MARKER} via /proc/1/fd/%d\\n" % fd)
    except OSError:
        pass
sys.exit(5)
"""


def test_log_lines_are_json_and_carry_the_callers_trace_id(spans: InMemorySpanExporter) -> None:
    server = start_server("--log-format", "json", "--log-level", "debug", "--pool-size", "1")
    try:
        with Client(server.address, timeout=60) as client:
            result = client.execute("python", PROGRAM)
            streamed = list(client.stream("javascript", "console.log(1)"))
    finally:
        assert stop_server(server) == 0
    # The log is read by a thread; its last line may still be on the way.
    deadline = time.monotonic() + 10
    while not any("server.stopped" in line for line in server.log):
        assert time.monotonic() < deadline, server.log[-3:]
        time.sleep(0.02)
    assert result.status is ExecutionStatus.RUNTIME_ERROR
    assert MARKER.encode() in result.stdout  # the program did write it
    assert streamed
    calls = {
        span.name.rsplit("/", 1)[1]: span
        for span in spans.get_finished_spans()
        if span.kind is SpanKind.CLIENT
    }
    lines = [json.loads(line) for line in server.log if line.strip()]  # every line parses
    events = [line["event"] for line in lines]
    for lifecycle in ("server.listening", "server.serving", "server.draining", "server.stopped"):
        assert lifecycle in events
    finished = [line for line in lines if line["event"] == "execution.finished"]
    assert len(finished) == 2  # one line per execution
    by_language = {line["language"]: line for line in finished}
    python, javascript = by_language["python"], by_language["javascript"]
    execute = calls["Execute"].context
    stream = calls["ExecuteStream"].context
    assert execute is not None and stream is not None
    assert python["trace_id"] == f"{execute.trace_id:032x}"
    assert javascript["trace_id"] == f"{stream.trace_id:032x}"
    assert python["execution_id"] == result.execution_id
    assert python["verdict"] == "runtime_error" and python["exit_code"] == 5
    assert javascript["verdict"] == "ok"
    for line in (python, javascript):
        assert line["level"] == "info"
        assert line["duration_seconds"] > 0
        assert line["wall_seconds"] > 0
        assert {"admission", "acquire", "deliver", "run"} <= set(line["phases"])
    assert not [line for line in server.log if MARKER in line]
