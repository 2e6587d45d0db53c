"""The server stays small and responsive: capped floods, many concurrent streams."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import Server, start_server, stop_server

pytestmark = pytest.mark.docker
GIGABYTE_FLOOD = (
    "import sys\nchunk = b'y' * 65536\nfor _ in range(16384):\n    sys.stdout.buffer.write(chunk)\n"
)


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} missing")


@pytest.fixture
def fresh_server() -> Iterator[Server]:
    server = start_server("--max-output", "16M")
    yield server
    stop_server(server)


def test_gigabyte_flood_is_capped_without_growing_the_server(fresh_server: Server) -> None:
    stub = fresh_server.stub()
    pid = fresh_server.process.pid
    hello = pb.ExecutionSpec(language="python", source=b"print(1)")
    for _ in range(3):  # warm up allocators and the channel
        stub.Execute(pb.ExecuteRequest(spec=hello), timeout=60)
    before = memory_kib(pid, "VmHWM")

    cap = 16 << 20
    spec = pb.ExecutionSpec(
        language="python",
        source=GIGABYTE_FLOOD.encode(),
        limits=pb.ResourceLimits(max_output_bytes=cap),
    )
    received = 0
    result = None
    for event in stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=120):
        if event.WhichOneof("event") == "output":
            received += len(event.output.data)
        elif event.WhichOneof("event") == "result":
            result = event.result
    assert result is not None
    assert result.status == pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED
    assert received == cap
    buffered = stub.Execute(
        pb.ExecuteRequest(spec=pb.ExecutionSpec(language="python", source=GIGABYTE_FLOOD.encode())),
        timeout=120,
    ).result
    assert buffered.status == pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED
    assert len(buffered.stdout) == 1 << 20
    growth_mib = (memory_kib(pid, "VmHWM") - before) / 1024
    assert growth_mib < 8, f"server peak memory grew by {growth_mib:.1f} MiB"


def test_200_concurrent_streams_leave_the_event_loop_responsive() -> None:
    server = start_server("--max-concurrency", "200", "--admission-wait", "300")
    try:
        channel = grpc.insecure_channel(server.address)
        stub = pb_grpc.ExecutionServiceStub(channel)
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(server.address))
        source = b"import time\nprint('a', flush=True)\ntime.sleep(1)\nprint('b')\n"
        spec = pb.ExecutionSpec(language="python", source=source)
        done = threading.Event()
        latencies: list[float] = []

        def probe() -> None:
            request = health_pb2.HealthCheckRequest(service="")
            while not done.is_set():
                started = time.perf_counter()
                health.Check(request, timeout=10)
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)

        def one(_: int) -> bytes:
            events = list(stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=300))
            assert events[-1].result.status == pb.EXECUTION_STATUS_OK
            return b"".join(e.output.data for e in events if e.WhichOneof("event") == "output")

        prober = threading.Thread(target=probe)
        prober.start()
        with ThreadPoolExecutor(max_workers=200) as workers:
            outputs = list(workers.map(one, range(200)))
        done.set()
        prober.join()
        assert outputs == [b"a\nb\n"] * 200
        assert len(latencies) > 20
        assert statistics.median(latencies) < 0.05, latencies
        assert max(latencies) < 0.5, max(latencies)
        channel.close()
    finally:
        stop_server(server)
