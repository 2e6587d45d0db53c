"""`python -m bench.cells`: code cells against one-shot Executes, and imports, in one run.

One server (the default hosts and session spares; Python and JavaScript served, runc).
This machine is shared and noisy, so every figure has a baseline measured in the same
run, interleaved with it (whose turn is first rotates from round to round), and the
report gives ratios:

1. A trivial cell `1+1` in a warm session (its kernel started), through the gRPC stub's
   Exec with `code` and through the SDK's `Session.run_code`, against the same
   expression as a one-shot program (`print(1+1)`, `console.log(1+1)`) through
   `Execute` (the stub's, and the SDK's `Client.execute`), on the same server. Python,
   then JavaScript; and an Exec of `true` in the same session (what any Exec of a
   session costs). Target: a cell's p50 <= 0.2x Execute's, and <= 5 ms.
2. `import numpy` as a cell once the interpreter has it loaded (the warm session's
   second and later imports), against a `1+1` cell in the same session; and the first
   import in a fresh session (a handful, each its own session, its kernel started by a
   `1+1` cell first, which is timed too: the kernel's start).

Whatever happens (a failure, Ctrl-C, SIGTERM) every session is deleted, the server
(started with `--end-sessions-on-exit 1`) stopped, and what is left of the run's
containers swept. The report goes to bench/results/cells.json and cells.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import grpc

from bench.cells_report import import_ratios, markdown, render, round_trip_ratios
from bench.plan import RESULTS_DIR
from bench.sessions import CALL_TIMEOUT, Run, SessionServer, run_bench
from bench.sessions_report import figures
from bench.stats import Collector, interleaved, timed
from codebeaker.client import Client, ExecutionStatus, Session
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from codebeaker.v1 import session_pb2 as spb

CELL, CELL_TEXT = "1+1", "2"
IMPORT = "import numpy"
ONE_SHOT = {"python": "print(1+1)\n", "javascript": "console.log(1+1)\n"}
ONE_SHOT_OUTPUT = b"2\n"
# A fresh session's cells, in order: the first starts its kernel.
FRESH_CELLS = (("kernel_start", CELL, CELL_TEXT), ("import_first", IMPORT, None))
SERVER_FLAGS = [
    "--languages", ",".join(ONE_SHOT),
    "--runtime", "runc",
    "--end-sessions-on-exit", "1",
    "--metrics-address", "127.0.0.1:0",
]  # fmt: skip


def say(text: str) -> None:
    print(f"bench.cells: {text}", flush=True)


class Calls:
    """Every way the bench calls the server: the session stub (SessionServer), the
    ExecutionService stub on a channel of its own, and the SDK's client."""

    def __init__(self, server: SessionServer) -> None:
        self.server = server
        self._channel = grpc.insecure_channel(server.process.address)
        self.execution = pb_grpc.ExecutionServiceStub(self._channel)
        self.client = Client(server.process.address, timeout=CALL_TIMEOUT)

    def close(self) -> None:
        self.client.close()
        self._channel.close()

    def cell(self, name: str, code: str, text: str | None) -> None:
        """One cell through the stub; it must end OK, its last value shown as `text`."""
        start = spb.ExecStart(session=name, code=code)
        result, shown = None, None
        requests = iter([spb.ExecRequest(start=start)])
        for response in self.server.stub.Exec(requests, timeout=CALL_TIMEOUT):
            if response.HasField("display") and response.display.mime_type == "text/plain":
                shown = response.display.data.decode(errors="replace")
            elif response.HasField("result"):
                result = response.result
        if result is None or result.status != pb.EXECUTION_STATUS_OK or shown != text:
            raise RuntimeError(f"cell {code!r}: shown {shown!r}, {result}")

    def cell_sdk(self, session: Session) -> None:
        result = session.run_code(CELL)
        if result.status != ExecutionStatus.OK or result.text != CELL_TEXT:
            raise RuntimeError(f"run_code {CELL!r}: {result.status} {result.text!r}")

    def execute(self, language: str) -> None:
        spec = pb.ExecutionSpec(language=language, source=ONE_SHOT[language].encode())
        result = self.execution.Execute(pb.ExecuteRequest(spec=spec), timeout=CALL_TIMEOUT).result
        if result.status != pb.EXECUTION_STATUS_OK or result.stdout != ONE_SHOT_OUTPUT:
            raise RuntimeError(f"Execute: {pb.ExecutionStatus.Name(result.status)} {result}")

    def execute_sdk(self, language: str) -> None:
        result = self.client.execute(language, ONE_SHOT[language])
        if result.status != ExecutionStatus.OK or result.stdout != ONE_SHOT_OUTPUT:
            raise RuntimeError(f"Client.execute: {result.status} {result.stdout!r}")


# ---------- 1. a cell against a one-shot Execute ----------


def measure_round_trip(run: Run, calls: Calls, language: str, name: str) -> dict[str, Any]:
    args = run.args
    session = calls.client.get_session(name)
    # The first cell starts the session's kernel; the warm-up rounds warm the rest.
    kernel = timed(partial(calls.cell, name, CELL, CELL_TEXT))()
    kinds: dict[str, Callable[[], None]] = {
        "cell_stub": lambda: calls.cell(name, CELL, CELL_TEXT),
        "cell_sdk": lambda: calls.cell_sdk(session),
        "execute_stub": lambda: calls.execute(language),
        "execute_sdk": lambda: calls.execute_sdk(language),
        "exec_true": lambda: calls.server.exec_true(name),
    }
    collected = interleaved(
        kinds,
        warmup=args.warmup,
        runs=args.runs,
        gap=args.gap,
        each_round=calls.server.process.check_alive,
    )
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out |= {"kernel_start_ms": round(kernel, 3), "execute_program": ONE_SHOT[language]}
    out["ratios"] = round_trip_ratios(out)
    return out


# ---------- 2. imports ----------


def measure_loaded_import(run: Run, calls: Calls, name: str) -> dict[str, Any]:
    """`import numpy` once numpy is loaded, against `1+1`, in the same warm session."""
    first = timed(partial(calls.cell, name, IMPORT, None))()
    kinds: dict[str, Callable[[], None]] = {
        "import_loaded": lambda: calls.cell(name, IMPORT, None),
        "cell": lambda: calls.cell(name, CELL, CELL_TEXT),
    }
    collected = interleaved(
        kinds,
        warmup=run.args.warmup,
        runs=run.args.import_runs,
        gap=run.args.gap,
        each_round=calls.server.process.check_alive,
    )
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out["warm_first_import_ms"] = round(first, 3)
    return out


def measure_first_import(run: Run, calls: Calls) -> dict[str, Any]:
    """In each of a few fresh sessions: the first cell (the kernel's start), then the
    first `import numpy`; the spare's refill after the create is left to settle first."""
    server, args = calls.server, run.args
    collected = {kind: Collector() for kind, _, _ in FRESH_CELLS}
    for _ in range(args.fresh):
        server.process.check_alive()
        name = server.create(language="python")
        try:
            time.sleep(args.settle)
            for kind, code, text in FRESH_CELLS:
                try:
                    collected[kind].samples.append(timed(partial(calls.cell, name, code, text))())
                except Exception as error:
                    collected[kind].fail(error)
                time.sleep(args.gap)
        finally:
            server.delete(name)
    return {kind: figures(c) for kind, c in collected.items()}


# ---------- the run ----------


def run_phases(run: Run, document: dict[str, Any]) -> None:
    args = run.args
    run.phase = "server"
    server = run.start_server("server", SERVER_FLAGS)
    document["server"] = "the default hosts and session spares, " + " ".join(SERVER_FLAGS)
    calls = Calls(server)
    try:
        for language in ONE_SHOT:
            run.phase = f"round trip {language}"
            say(f"{language}: `1+1` as a cell and as Execute, {args.runs} of each, interleaved")
            name = server.create(language=language)
            document[language] = measure_round_trip(run, calls, language, name)
            if language == "python":
                run.phase = "loaded import"
                say(f"python: `import numpy` loaded, {args.import_runs} against `1+1`")
                document["imports"] = measure_loaded_import(run, calls, name)
            server.delete(name)
        run.phase = "first import"
        say(f"python: the first `import numpy` in {args.fresh} fresh sessions")
        document["imports"] |= measure_first_import(run, calls)
        document["imports"]["ratios"] = import_ratios(document["imports"])
    finally:
        calls.close()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cells")
    parser.add_argument("--runs", type=int, default=30, help="round trips of each kind")
    parser.add_argument("--warmup", type=int, default=3, help="unrecorded rounds first")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds before each call")
    parser.add_argument("--import-runs", type=int, default=30, help="imports of loaded numpy")
    parser.add_argument("--fresh", type=int, default=5, help="fresh sessions' first imports")
    parser.add_argument(
        "--settle", type=float, default=1.0, help="seconds after a fresh session's create"
    )
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few of everything (flags still count)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "cells.json")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(runs=5, warmup=1, import_runs=5, fresh=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_bench(parse(argv), "cells", run_phases, render, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
