"""CodeBeaker from the caller's side: `Execute`, `ExecuteStream`, throughput.

Generated stubs on one long-lived channel, as a service calling CodeBeaker
would hold one. Every call checks the verdict and the output, so a fast wrong
answer never counts as a sample.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import replace

import grpc

from bench.programs import HELLO_OUTPUT, Program
from bench.stats import Summary, collect
from bench.throughput import Throughput, run_window
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

CALL_TIMEOUT = 60.0


class Service:
    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self.stub: pb_grpc.ExecutionServiceStub = pb_grpc.ExecutionServiceStub(self._channel)
        grpc.channel_ready_future(self._channel).result(timeout=30)

    def close(self) -> None:
        self._channel.close()

    def execute(self, program: Program) -> float:
        """Runs hello world; returns the program's wall time as the sandbox measured it (ms)."""
        spec = pb.ExecutionSpec(language=program.language, source=program.hello.encode())
        result = self.stub.Execute(pb.ExecuteRequest(spec=spec), timeout=CALL_TIMEOUT).result
        if result.status != pb.EXECUTION_STATUS_OK or result.stdout != HELLO_OUTPUT:
            raise RuntimeError(
                f"{pb.ExecutionStatus.Name(result.status)} exit {result.exit_code}: "
                f"{result.stdout[:80]!r} {result.stderr[:200]!r} {result.message}"
            )
        return float(result.wall_time.seconds * 1e3 + result.wall_time.nanos / 1e6)

    def first_output_ms(self, program: Program) -> float:
        """Receipt time of the first output chunk minus the time the program printed in it."""
        spec = pb.ExecutionSpec(language=program.language, source=program.timestamp.encode())
        received_ns = 0
        data = b""
        status = pb.EXECUTION_STATUS_UNSPECIFIED
        for event in self.stub.ExecuteStream(
            pb.ExecuteStreamRequest(spec=spec), timeout=CALL_TIMEOUT
        ):
            kind = event.WhichOneof("event")
            if kind == "output" and not received_ns:
                received_ns = time.time_ns()
                data = event.output.data
            elif kind == "result":
                status = event.result.status
        if status != pb.EXECUTION_STATUS_OK or not received_ns:
            raise RuntimeError(f"{pb.ExecutionStatus.Name(status)}; first output {data[:80]!r}")
        printed_ns = int(data.split(b"\n", 1)[0])
        return (received_ns - printed_ns) / 1e6


def measure_execute(
    service: Service,
    program: Program,
    *,
    warmup: int,
    runs: int,
    before_each: Callable[[], None] | None = None,
    note: str = "",
) -> Summary:
    """Concurrency 1; `before_each` (untimed) may wait, e.g. for the pool to refill.

    The note gives the median of the program's own wall time as the sandbox
    measured it, so the rest of the figure is CodeBeaker's overhead.
    """
    walls: list[float] = []

    def sample() -> float:
        if before_each is not None:
            before_each()
        start = time.perf_counter_ns()
        walls.append(service.execute(program))
        return (time.perf_counter_ns() - start) / 1e6

    found = collect(sample, warmup=warmup, runs=runs)
    measured = walls[-found.runs :] if found.runs else []
    wall = (
        f"program wall time (sandbox) median {statistics.median(measured):.1f} ms"
        if measured
        else ""
    )
    return replace(found, note="; ".join(part for part in (note, wall) if part))


def measure_first_output(
    service: Service,
    program: Program,
    *,
    warmup: int,
    runs: int,
    before_each: Callable[[], None] | None = None,
) -> Summary:
    def sample() -> float:
        if before_each is not None:
            before_each()
        return service.first_output_ms(program)

    return collect(sample, warmup=warmup, runs=runs)


def measure_throughput(
    service: Service,
    program: Program,
    *,
    concurrency: int,
    window: float,
    warmup: float,
    note: str = "",
) -> Throughput:
    return run_window(
        lambda _index: service.execute(program),
        concurrency=concurrency,
        window=window,
        warmup=warmup,
        note=note,
    )
