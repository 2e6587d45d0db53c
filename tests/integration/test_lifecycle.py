"""The server's life cycle with real containers: orphans, shutdown, engine loss."""

from __future__ import annotations

import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.v1 import execution_pb2 as pb
from tests.integration.conftest import (
    our_containers,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.docker


def test_startup_removes_leftover_containers() -> None:
    instance = "test-orphans"
    created = subprocess.run(
        ["docker", "create", "--label", f"io.codebeaker.owner={instance}", "codebeaker/python"],
        check=True,
        capture_output=True,
    )
    leftover = created.stdout.decode().strip()
    assert our_containers(instance) == [leftover]
    server = start_server(instance=instance)
    try:
        assert leftover not in our_containers(instance)
    finally:
        stop_server(server)


def test_sigterm_lets_in_flight_finish_then_exits_zero() -> None:
    server = start_server("--shutdown-grace", "20")
    stub = server.stub()
    source = b"import time\nprint('start', flush=True)\ntime.sleep(2)\nprint('end')\n"
    spec = pb.ExecutionSpec(language="python", source=source)
    call = stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=60)
    events = []
    for event in call:
        events.append(event)
        if event.WhichOneof("event") == "output":
            break
    server.process.terminate()
    events.extend(call)
    assert server.process.wait(timeout=60) == 0
    result = events[-1].result
    assert result.status == pb.EXECUTION_STATUS_OK
    output = b"".join(e.output.data for e in events if e.WhichOneof("event") == "output")
    assert output == b"start\nend\n"
    assert our_containers(server.instance) == []


def test_sigterm_past_grace_kills_and_removes_the_container() -> None:
    server = start_server("--shutdown-grace", "1")
    stub = server.stub()
    spec = pb.ExecutionSpec(
        language="python", source=b"import time\nprint('up', flush=True)\ntime.sleep(60)\n"
    )
    call = stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=60)
    for event in call:
        if event.WhichOneof("event") == "output":
            break
    server.process.terminate()
    assert server.process.wait(timeout=30) == 0
    with pytest.raises(grpc.RpcError):
        list(call)
    assert our_containers(server.instance) == []


def test_unreachable_engine_is_unavailable_and_not_serving() -> None:
    server = start_server("--docker-host", "unix:///nonexistent/docker.sock", wait_serving=False)
    try:
        channel = grpc.insecure_channel(server.address)
        health = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
        assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
        spec = pb.ExecutionSpec(language="python", source=b"print(1)")
        with pytest.raises(grpc.RpcError) as caught:
            server.stub().Execute(pb.ExecuteRequest(spec=spec), timeout=30)
        error = caught.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "unreachable" in (error.details() or "")
        channel.close()
    finally:
        assert stop_server(server) == 0
