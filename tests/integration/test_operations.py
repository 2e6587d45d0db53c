"""Queued executions on a real server over real Docker: a cancelled running job's container
is removed (runc and gVisor); a SIGKILLed server restarted on its state directory ends every
job exactly once; direct calls are served while 500 jobs wait."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import (  # type: ignore[import-untyped, unused-ignore]
    operations_pb2,
    operations_pb2_grpc,
)

from codebeaker.v1 import execution_pb2 as pb
from tests.integration.conftest import Server, our_containers, start_server, stop_server

pytestmark = pytest.mark.docker
SLEEPER = "import time\nprint('started', flush=True)\ntime.sleep(60)\n"


def _operations(server: Server) -> Any:
    return operations_pb2_grpc.OperationsStub(grpc.insecure_channel(server.address))


def _submit(server: Server, source: str, request_id: str = "") -> str:
    spec = pb.ExecutionSpec(language="python", source=source.encode())
    request = pb.SubmitExecutionRequest(spec=spec, request_id=request_id)
    operation = server.stub().SubmitExecution(request, timeout=10)
    return str(operation.name)


def _metadata(operation: operations_pb2.Operation) -> pb.ExecutionMetadata:
    meta = pb.ExecutionMetadata()
    operation.metadata.Unpack(meta)
    return meta


def _wait(operations: Any, name: str, seconds: float = 60.0) -> operations_pb2.Operation:
    request = operations_pb2.WaitOperationRequest(name=name)
    request.timeout.FromSeconds(int(seconds))
    return operations.WaitOperation(request, timeout=seconds + 5)


def _poll(condition: Any, within: float) -> bool:
    """An outside observer (Docker, another process) checked until `condition()` holds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("runtime", ["runc", "runsc"])
def test_cancel_a_running_job_removes_its_container(runtime: str, tmp_path: Path) -> None:
    # One container per run and no pool: the one container of this server is the job's.
    options = ("--runtime", runtime, "--isolation", "container", "--pool-size", "0")
    server = start_server(*options, "--state-dir", str(tmp_path))
    try:
        operations = _operations(server)
        name = _submit(server, SLEEPER)
        running = pb.EXECUTION_STATE_RUNNING

        def state() -> int:
            get = operations_pb2.GetOperationRequest(name=name)
            return int(_metadata(operations.GetOperation(get, timeout=5)).state)

        # No pool: the one container of this server is the job's.
        up = "status=running"
        assert _poll(lambda: state() == running and our_containers(server.instance, up), 60)
        (container,) = our_containers(server.instance)
        operations.CancelOperation(operations_pb2.CancelOperationRequest(name=name), timeout=10)
        done = _wait(operations, name, 30)
        assert _metadata(done).state == pb.EXECUTION_STATE_CANCELLED
        gone = _poll(lambda: container not in our_containers(server.instance), 15)
        assert gone, "the cancelled job's container is still there"
    finally:
        stop_server(server)


def test_sigkill_then_restart_ends_every_job_exactly_once(tmp_path: Path) -> None:
    flags = ("--runtime", "runc", "--pool-size", "0", "--state-dir", str(tmp_path))
    queue = ("--queue-workers", "2", "--queue-lease", "3")
    server = start_server(*flags, *queue)
    instance = server.instance
    names = [_submit(server, f"import time\ntime.sleep(3)\nprint({n})\n") for n in range(5)]
    operations = _operations(server)

    def running() -> int:
        states = [
            _metadata(
                operations.GetOperation(operations_pb2.GetOperationRequest(name=n), timeout=5)
            ).state
            for n in names
        ]
        return states.count(pb.EXECUTION_STATE_RUNNING)

    assert _poll(lambda: running() == 2, 60)
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=30)
    again = start_server(*flags, *queue, instance=instance)
    try:
        operations = _operations(again)
        ends = [_wait(operations, name, 120) for name in names]
        metas = [_metadata(end) for end in ends]
        assert all(end.done for end in ends)
        assert [m.state for m in metas] == [pb.EXECUTION_STATE_SUCCEEDED] * 5
        for end, n in zip(ends, range(5), strict=True):
            result = pb.ExecuteResponse()
            end.response.Unpack(result)
            assert result.result.stdout == f"{n}\n".encode()
        # The two that were running when it was killed ran again, the others once.
        assert sorted(m.attempts for m in metas) == [1, 1, 1, 2, 2]
    finally:
        stop_server(again)


def test_direct_calls_are_served_while_500_jobs_are_queued(tmp_path: Path) -> None:
    server = start_server(
        "--runtime",
        "runc",
        "--state-dir",
        str(tmp_path),
        "--queue-workers",
        "2",
        "--max-concurrency",
        "4",
        "--shutdown-grace",
        "1",
    )
    try:
        names = [_submit(server, SLEEPER) for _ in range(500)]
        assert len(set(names)) == 500
        stub = server.stub()
        spec = pb.ExecutionSpec(language="python", source=b"print('direct')")
        for _ in range(3):
            started = time.monotonic()
            response = stub.Execute(pb.ExecuteRequest(spec=spec), timeout=30)
            assert response.result.stdout == b"direct\n"
            assert time.monotonic() - started < 10
        listed = _operations(server).ListOperations(
            operations_pb2.ListOperationsRequest(name="operations", filter="state = QUEUED"),
            timeout=10,
        )
        assert len(listed.operations) == 50 and listed.next_page_token
    finally:
        assert stop_server(server) == 0
