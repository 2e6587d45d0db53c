"""The SDK's and the CLI's operations against the real server (in-process, SQLite queue
under a temporary --state-dir) over the fake sandbox: submit, then wait, end to end.

The server runs on the test's event loop, so the blocking client and the CLI
process are driven from threads (`asyncio.to_thread`) while it serves them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import (
    AsyncClient,
    Client,
    ExecutionCancelledError,
    ExecutionStatus,
    InvalidArgumentError,
    NotFoundError,
    OperationState,
    ResourceExhaustedError,
    UnavailableError,
)
from tests.spans import wait_for_spans
from tests.unit.cli_environment import environment
from tests.unit.conftest import start_server
from tests.unit.fake_sandbox import FakeSandbox
from tests.unit.operation_stores import eventually
from tests.unit.operations_helpers import Queued, config_for, queue_server

OPERATIONS = "google.longrunning.Operations"


def address_of(q: Queued) -> str:
    return f"127.0.0.1:{q.server.app.port}"


async def test_submit_then_wait_returns_what_execute_returns(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q, AsyncClient(address_of(q), timeout=10) as client:
        program = "out hello\nerr oops\nexit 3"
        direct = await client.execute("python", program)
        operation = await client.submit("python", program, request_id="e2e-1")
        assert operation.name.startswith("operations/")
        assert operation.metadata.request_id == "e2e-1"
        queued = await operation.wait(timeout=30)
        assert queued.status is ExecutionStatus.RUNTIME_ERROR
        assert (queued.stdout, queued.stderr, queued.exit_code) == (
            direct.stdout,
            direct.stderr,
            direct.exit_code,
        )
        assert operation.state is OperationState.SUCCEEDED and operation.done
        meta = operation.metadata
        assert meta.attempts == 1 and meta.execution_id == queued.execution_id
        assert meta.create_time is not None and meta.start_time is not None
        assert meta.end_time is not None and meta.create_time <= meta.start_time <= meta.end_time

        again = await client.submit("python", program, request_id="e2e-1")
        assert again.name == operation.name and again.done
        listed = [op.name async for op in client.list_operations(done=True, page_size=1)]
        assert listed == [operation.name]


async def test_the_run_of_a_job_is_in_the_submitters_trace(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    async with queue_server(tmp_path) as q, AsyncClient(address_of(q)) as client:
        operation = await client.submit("python", "out traced")
        await operation.wait(timeout=30)
    finished = wait_for_spans(
        spans, lambda found: any(s.name == "codebeaker.operation.run" for s in found)
    )
    (submit,) = [
        s for s in finished if s.kind is SpanKind.CLIENT and s.name.endswith("/SubmitExecution")
    ]
    (run,) = [s for s in finished if s.name == "codebeaker.operation.run"]
    assert submit.context is not None and run.context is not None
    assert run.context.trace_id == submit.context.trace_id
    assert run.attributes is not None
    assert run.attributes["codebeaker.operation"] == operation.name


async def test_the_blocking_client_cancels_and_sees_failures(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q:
        client = Client(address_of(q), timeout=10)
        try:
            running = await asyncio.to_thread(client.submit, "python", "out started\nblock")
            await q.server.sandbox.blocked.wait()
            await asyncio.to_thread(running.cancel)
            assert running.metadata.cancel_requested or running.done
            with pytest.raises(ExecutionCancelledError):
                await asyncio.to_thread(running.wait, 30)
            assert running.state is OperationState.CANCELLED
            assert q.server.sandbox.running == 0

            def failures() -> None:
                failed = client.submit("python", "raise unavailable")
                with pytest.raises(UnavailableError, match="unreachable"):
                    failed.wait(timeout=30)
                assert failed.state is OperationState.FAILED
                with pytest.raises(InvalidArgumentError) as invalid:
                    client.submit("no-such-language", "x")
                assert [v.field for v in invalid.value.field_violations] == ["spec.language"]
                with pytest.raises(NotFoundError):
                    client.get_operation("operations/nope")
                states = {op.name: op.state for op in client.list_operations()}
                assert states == {
                    running.name: OperationState.CANCELLED,
                    failed.name: OperationState.FAILED,
                }

            await asyncio.to_thread(failures)
        finally:
            client.close()


async def test_a_full_queue_says_when_to_retry(tmp_path: Path) -> None:
    async with (
        queue_server(tmp_path, queue_workers=0, max_queued=1) as q,
        AsyncClient(address_of(q), timeout=10) as client,
    ):
        await client.submit("python", "out 1")
        with pytest.raises(ResourceExhaustedError) as full:
            await client.submit("python", "out 2")
        assert full.value.reason == "QUEUE_FULL"
        assert full.value.retry_after is not None and full.value.retry_after > 0


async def test_cli_submit_then_wait_exits_as_run(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("out hello\nexit 3\n")
    async with queue_server(tmp_path / "state") as q:
        address = address_of(q)

        def cli(*args: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [sys.executable, "-m", "codebeaker.client", *args, "--address", address],
                capture_output=True,
                env=environment(),
                cwd=tmp_path,
                timeout=60,
                check=False,
            )

        ran = await asyncio.to_thread(cli, "run", "main.py")
        submitted = await asyncio.to_thread(cli, "submit", "main.py")
        assert submitted.returncode == 0, submitted.stderr
        name = submitted.stdout.decode().strip()
        waited = await asyncio.to_thread(cli, "wait", name)
        assert (waited.returncode, waited.stdout, waited.stderr) == (
            ran.returncode,
            ran.stdout,
            ran.stderr,
        )
        assert waited.returncode == 3 and waited.stdout == b"hello\n"
        listed = await asyncio.to_thread(cli, "operations", "list")
        assert name in listed.stdout.decode() and "SUCCEEDED" in listed.stdout.decode()


async def test_a_wait_outlives_a_server_restart(tmp_path: Path) -> None:
    """The server stops while a WaitOperation is held (its call is cut, UNAVAILABLE) and
    comes back on the same port and state dir: the wait goes on and gets the result."""
    config = config_for(tmp_path, queue_workers=0, shutdown_grace=0.2)  # nothing runs here
    first = await start_server(config, FakeSandbox())
    port = first.app.port
    held = {"grpc_type": "unary", "grpc_service": OPERATIONS, "grpc_method": "WaitOperation"}

    async def wait_calls() -> float | None:
        return first.app.metrics.registry.get_sample_value("grpc_server_started_total", held)

    async with AsyncClient(f"127.0.0.1:{port}") as client:
        operation = await client.submit("python", "out after the restart")
        waiting = asyncio.create_task(operation.wait(timeout=60))
        await eventually(wait_calls, what="a WaitOperation on the first server")
        await first.channel.close()
        await first.app.stop()
        second = await start_server(
            config_for(tmp_path, address=f"127.0.0.1:{port}"), FakeSandbox()
        )
        try:
            result = await waiting
        finally:
            await second.channel.close()
            await second.app.stop()
    assert result.stdout == b"after the restart\n"
    assert operation.metadata.attempts == 1
