"""The worker side of the protocol: arguments in, one JSON line out.

Each run is split into the peer's own phases (e.g. create / run / destroy), so
the report can say where a peer spends its time. SIGTERM becomes
KeyboardInterrupt, so the peer's context managers remove their containers
when the bench is interrupted.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType

from bench.programs import HELLO_OUTPUT, PROGRAMS, Program


@dataclass
class Phases:
    """Wall time per named phase of one run, in milliseconds."""

    spent: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter_ns()
        try:
            yield
        finally:
            self.spent[name] = (time.perf_counter_ns() - start) / 1e6


# One run of the peer: writes the program, runs it, tears down; returns stdout.
RunOnce = Callable[[Phases], bytes]


@dataclass(frozen=True)
class Options:
    program: Program
    warmup: int
    runs: int
    run_id: str
    mode: str


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse(argv: list[str]) -> Options:
    parser = argparse.ArgumentParser()
    parser.add_argument("--language", required=True, choices=sorted(PROGRAMS))
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--run-id", required=True)
    parser.add_argument("--mode", default="")
    parser.add_argument(
        "--run", default="", help="JSON argv with {entrypoint}, as CodeBeaker runs it"
    )
    args = parser.parse_args(argv)
    program = PROGRAMS[args.language]
    if args.run:
        program = replace(program, run=tuple(str(part) for part in json.loads(args.run)))
    return Options(program, args.warmup, args.runs, args.run_id, args.mode)


def serve(
    options: Options, run_once: RunOnce, close: Callable[[], None], info: dict[str, str]
) -> int:
    """Warm up, measure, print the JSON line; always `close()`."""
    signal.signal(signal.SIGTERM, _interrupt)
    samples: list[float] = []
    phases: dict[str, list[float]] = {}
    errors: list[str] = []
    try:
        for index in range(options.warmup + options.runs):
            record = index >= options.warmup
            timing = Phases()
            start = time.perf_counter_ns()
            try:
                out = run_once(timing)
                if out != HELLO_OUTPUT:
                    raise RuntimeError(f"printed {out[:80]!r}")
            except Exception as error:  # a failed run is data
                if record:
                    errors.append(f"{type(error).__name__}: {error}"[:300])
                continue
            if record:
                samples.append((time.perf_counter_ns() - start) / 1e6)
                for name, spent in timing.spent.items():
                    phases.setdefault(name, []).append(spent)
    finally:
        close()
    report = {
        "samples_ms": samples,
        "errors": len(errors),
        "error_messages": errors[:3],
        "phase_medians_ms": {name: statistics.median(v) for name, v in phases.items()},
        "info": info,
    }
    sys.stdout.write(json.dumps(report) + "\n")
    return 0
