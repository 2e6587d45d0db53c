"""`python -m bench.operations`: the queue (SubmitExecution + Operations) against Execute.

Every figure has its baseline measured in the same run on the same server, so
the shared machine's noise hits both alike and the report gives ratios:

- latency, idle queue: submit-to-done of a Python hello world (SubmitExecution,
  then WaitOperation until done) against one `Execute`, alternating the two,
  each call on an idle server (warm pool full, used containers gone), once per
  store: embedded SQLite and a Redis on a loopback port of the bench's own;
  the overhead is the difference of the medians (target: <= 10 ms embedded,
  <= 15 ms Redis) and of the p90s.
- burst: N jobs submitted at once (8 callers submitting), all collected; every
  one must end SUCCEEDED with the right output after exactly one run, counted
  from the operations (attempts, execution ids) and from the server's log (one
  `operation.started` each). Its total time (first submit to the last end)
  against the same N through `Execute` with 8 callers.
- split: two servers on one Redis, every job submitted to the first; who ran
  what, from both servers' logs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.longrunning import (  # type: ignore[import-untyped, unused-ignore]
    operations_pb2,
    operations_pb2_grpc,
)

from bench.operations_report import TARGET_OVERHEAD_MS, other_benches, render
from bench.programs import HELLO_OUTPUT, PROGRAMS
from bench.queue_setup import RedisProcess, count_log, server_flags
from bench.server import ServerProcess
from bench.stats import Collector, percentile
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CALL_TIMEOUT = 120.0
PROGRAM = PROGRAMS["python"]
SPEC = pb.ExecutionSpec(language="python", source=PROGRAM.hello.encode())


class Caller:
    """One long-lived channel with the ExecutionService and Operations stubs."""

    def __init__(self, address: str) -> None:
        self._channel = grpc.insecure_channel(address)
        grpc.channel_ready_future(self._channel).result(timeout=30)
        self.execution = pb_grpc.ExecutionServiceStub(self._channel)
        self.operations = operations_pb2_grpc.OperationsStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def execute(self) -> None:
        result = self.execution.Execute(pb.ExecuteRequest(spec=SPEC), timeout=CALL_TIMEOUT).result
        _check(result)

    def submit(self, request_id: str) -> str:
        request = pb.SubmitExecutionRequest(spec=SPEC, request_id=request_id)
        return str(self.execution.SubmitExecution(request, timeout=CALL_TIMEOUT).name)

    def wait(self, name: str) -> operations_pb2.Operation:
        while True:
            request = operations_pb2.WaitOperationRequest(name=name)
            request.timeout.FromSeconds(30)
            operation = self.operations.WaitOperation(request, timeout=CALL_TIMEOUT)
            if operation.done:
                return operation

    def submit_and_wait(self, request_id: str) -> dict[str, float]:
        """Where the time went, in ms: the submit call, queued until claimed, claimed until
        ended (the run), ended until the waiter had it (server and caller share a clock)."""
        began = time.time()
        name = self.submit(request_id)
        submitted = time.time()
        operation = self.wait(name)
        delivered = time.time()
        _check(_response(operation).result)
        meta = _metadata(operation)
        create, start, end = (
            t.ToNanoseconds() / 1e9 for t in (meta.create_time, meta.start_time, meta.end_time)
        )
        return {
            "submit_call": (submitted - began) * 1e3,
            "queued": (start - create) * 1e3,
            "run": (end - start) * 1e3,
            "delivered": (delivered - end) * 1e3,
        }


def _check(result: pb.ExecutionResult) -> None:
    if result.status != pb.EXECUTION_STATUS_OK or result.stdout != HELLO_OUTPUT:
        raise RuntimeError(f"{pb.ExecutionStatus.Name(result.status)}: {result.stdout[:80]!r}")


def _response(operation: operations_pb2.Operation) -> pb.ExecuteResponse:
    response = pb.ExecuteResponse()
    if operation.WhichOneof("result") != "response" or not operation.response.Unpack(response):
        raise RuntimeError(f"{operation.name} ended without a response: {operation.error}")
    return response


def _metadata(operation: operations_pb2.Operation) -> pb.ExecutionMetadata:
    meta = pb.ExecutionMetadata()
    operation.metadata.Unpack(meta)
    return meta


def _figures(collector: Collector) -> dict[str, object]:
    samples = collector.samples
    out: dict[str, object] = {"runs": len(samples), "errors": collector.errors}
    if samples:
        out |= {
            "p50_ms": round(percentile(samples, 50), 2),
            "p90_ms": round(percentile(samples, 90), 2),
            "min_ms": round(min(samples), 2),
            "samples_ms": [round(s, 2) for s in samples],
        }
    if collector.messages:
        out["error_messages"] = collector.messages
    return out


def latency(
    server: ServerProcess, caller: Caller, *, warmup: int, runs: int, gap: float, pool: int
) -> dict[str, object]:
    """Execute and submit-to-done alternately (which goes first alternates too)."""
    parts: dict[str, list[float]] = {}

    def through_queue(n: int) -> None:
        for part, ms in caller.submit_and_wait(f"latency-{n}").items():
            if n >= warmup:
                parts.setdefault(part, []).append(ms)

    kinds: dict[str, Callable[[int], None]] = {
        "execute": lambda _n: caller.execute(),
        "submit_to_done": through_queue,
    }
    collected = {kind: Collector() for kind in kinds}
    for n in range(warmup + runs):
        for kind in sorted(kinds, reverse=n % 2 == 1):
            server.check_alive()
            time.sleep(gap)  # the last run's teardown and the pool's refill, off the clock
            server.wait_for_pool(pool, 10.0)
            started = time.perf_counter()
            try:
                kinds[kind](n)
            except Exception as error:
                if n >= warmup:
                    collected[kind].fail(error)
                continue
            if n >= warmup:
                collected[kind].samples.append((time.perf_counter() - started) * 1e3)
    out: dict[str, object] = {kind: _figures(c) for kind, c in collected.items()}
    out["submit_to_done_parts_p50_ms"] = {
        part: round(percentile(values, 50), 2) for part, values in parts.items()
    }
    execute, queued = collected["execute"].samples, collected["submit_to_done"].samples
    if execute and queued:
        for pct in (50, 90):
            base, mine = percentile(execute, pct), percentile(queued, pct)
            out[f"overhead_p{pct}_ms"] = round(mine - base, 2)
            out[f"ratio_p{pct}"] = round(mine / base, 3)
    return out


def burst_queue(caller: Caller, *, jobs: int, callers: int, tag: str) -> Burst:
    """`jobs` submitted at once by `callers` threads, then collected and checked."""
    began = time.time()
    with ThreadPoolExecutor(callers) as pool:
        names = list(pool.map(lambda n: caller.submit(f"{tag}-{n}"), range(jobs)))
    submitted = time.time() - began
    with ThreadPoolExecutor(callers) as pool:
        done = list(pool.map(caller.wait, names))
    ended = [_metadata(op).end_time.ToNanoseconds() / 1e9 for op in done]
    bad = 0
    for operation in done:
        try:
            _check(_response(operation).result)
        except RuntimeError:
            bad += 1
    metas = [_metadata(op) for op in done]
    found: dict[str, object] = {
        "jobs": jobs,
        "distinct_operations": len(set(names)),
        "succeeded_with_hello": jobs - bad,
        "attempts_not_1": sum(1 for m in metas if m.attempts != 1),
        "distinct_execution_ids": len({m.execution_id for m in metas}),
        "submit_seconds": round(submitted, 3),
        "total_seconds": round(max(ended) - began, 3),
    }
    return Burst(found, set(names))


@dataclass
class Burst:
    found: dict[str, object]
    names: set[str]

    def counted(self, logs: list[Path]) -> dict[str, object]:
        """The figures with the servers' logs counted: read once the servers stopped (a
        waiter may have its answer before the finishing server wrote its line)."""
        counts = [count_log(path, self.names) for path in logs]
        started: Counter[str] = Counter()
        succeeded: Counter[str] = Counter()
        for count in counts:
            started.update(count.started)
            succeeded.update(count.succeeded)
        return self.found | {
            "log_started_once": sum(1 for name in self.names if started[name] == 1),
            "log_started_more_than_once": sum(1 for name in self.names if started[name] > 1),
            "log_succeeded_once": sum(1 for name in self.names if succeeded[name] == 1),
            "log_other_ends": sum(sum(c.other_ends.values()) for c in counts),
            "log_handed_back": sum(c.handed_back for c in counts),
            "started_by_server": [sum(c.started.values()) for c in counts],
        }


def burst_execute(caller: Caller, *, jobs: int, callers: int) -> dict[str, object]:
    """The same `jobs` through Execute by `callers` threads, back to back."""
    tickets = itertools.count()
    lock = threading.Lock()
    errors = Collector()

    def loop() -> None:
        while next(tickets) < jobs:
            try:
                caller.execute()
            except Exception as error:
                with lock:
                    errors.fail(error)

    began = time.perf_counter()
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    out: dict[str, object] = {
        "jobs": jobs,
        "errors": errors.errors,
        "total_seconds": round(time.perf_counter() - began, 3),
    }
    if errors.messages:
        out["error_messages"] = errors.messages
    return out


def one_store(args: argparse.Namespace, store: str, queue: str, run_id: str) -> dict[str, object]:
    instance = f"bench-{run_id}-ops-{store}"
    log = RESULTS / f"operations-{store}.log"
    with tempfile.TemporaryDirectory(prefix="cb-bench-state-") as state:
        flags = server_flags(
            Path(state),
            queue=queue,
            workers=args.callers,
            concurrency=args.callers,
            pool_size=args.pool_size,
        )
        with ServerProcess(instance, flags, log) as server:
            caller = Caller(server.address)
            try:
                server.wait_for_pool(args.pool_size, 60.0)
                say(f"{store}: latency, {args.runs} of each")
                found: dict[str, object] = {
                    "latency": latency(
                        server,
                        caller,
                        warmup=args.warmup,
                        runs=args.runs,
                        gap=args.gap,
                        pool=args.pool_size,
                    )
                }
                server.wait_for_pool(args.pool_size, 60.0)
                say(f"{store}: {args.jobs} through Execute, {args.callers} callers")
                execute = burst_execute(caller, jobs=args.jobs, callers=args.callers)
                server.wait_for_pool(args.pool_size, 60.0)
                say(f"{store}: {args.jobs} submitted at once")
                burst = burst_queue(caller, jobs=args.jobs, callers=args.callers, tag=store)
            finally:
                caller.close()
    queued = burst.counted([log])
    ratio = float(str(queued["total_seconds"])) / float(str(execute["total_seconds"]))
    found["burst"] = {"execute": execute, "queue": queued, "ratio": round(ratio, 3)}
    return found


def split(args: argparse.Namespace, redis: RedisProcess, run_id: str) -> dict[str, object]:
    """Two servers on one Redis database; every job submitted to the first."""
    logs = [RESULTS / f"operations-split-{n}.log" for n in ("a", "b")]
    workers = max(1, args.callers // 2)
    with (
        tempfile.TemporaryDirectory(prefix="cb-bench-state-") as state_a,
        tempfile.TemporaryDirectory(prefix="cb-bench-state-") as state_b,
    ):
        servers = [
            ServerProcess(
                f"bench-{run_id}-ops-split-{n}",
                server_flags(
                    Path(state),
                    queue=redis.url(2),
                    workers=workers,
                    concurrency=workers,
                    pool_size=max(1, args.pool_size // 2),
                ),
                log,
            )
            for n, state, log in zip("ab", (state_a, state_b), logs, strict=True)
        ]
        try:
            for server in servers:
                server.start()
            for server in servers:
                server.wait_for_pool(max(1, args.pool_size // 2), 60.0)
            caller = Caller(servers[0].address)
            try:
                say(f"split: {args.split_jobs} submitted to one of two servers")
                burst = burst_queue(caller, jobs=args.split_jobs, callers=args.callers, tag="split")
            finally:
                caller.close()
        finally:
            for server in servers:
                server.stop()
    return burst.counted(logs)


def say(text: str) -> None:
    print(f"bench.operations: {text}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operations")
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--gap", type=float, default=0.3, help="seconds between latency calls")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs submitted at once")
    parser.add_argument("--split-jobs", type=int, default=300)
    parser.add_argument("--callers", type=int, default=8)
    parser.add_argument("--pool-size", type=int, default=4)
    parser.add_argument("--stores", default="sqlite,redis")
    parser.add_argument("--quick", action="store_true", help="5 runs, 40 jobs: a smoke run")
    parser.add_argument("--output", type=Path, default=RESULTS / "operations.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.jobs, args.split_jobs = 5, 1, 40, 40
    run_id = uuid.uuid4().hex[:10]
    stores = [s for s in args.stores.split(",") if s]
    document: dict[str, object] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "other_bench_processes_at_start": other_benches(),
        "plan": {k: v for k, v in vars(args).items() if k != "output"},
        "targets_overhead_p50_ms": TARGET_OVERHEAD_MS,
        "stores": {},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, object] = {}
    with RedisProcess() as redis:
        for store in stores:
            queue = "sqlite" if store == "sqlite" else redis.url(1)
            found[store] = one_store(args, store, queue, run_id)
        document["stores"] = found
        if "redis" in stores:
            document["split"] = split(args, redis, run_id)
    document["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(render(document))
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"results in {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
