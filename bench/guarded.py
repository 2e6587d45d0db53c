"""The frame of a bench run that starts servers of its own (`bench.sessions`, `bench.cells`):
the results document's head, the phases under a NoiseMonitor with SIGTERM taken as Ctrl-C,
the cleanup whatever happens (a failure, Ctrl-C, SIGTERM), then the report printed and the
document written. A run that did not complete still reports what it measured."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from bench.cleanup import NoiseMonitor
from bench.engine import api_client
from bench.operations_report import other_benches
from bench.plan import RESULTS_DIR

EXIT_CODES = {"completed": 0, "interrupted": 130}


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    with contextlib.suppress(Exception):
        api = api_client()
        try:
            version = api.version()
            info["docker_server_version"] = version.get("Version", "")
        finally:
            api.close()
    return info


def head(run_id: str, args: argparse.Namespace) -> dict[str, Any]:
    """The document's first keys: when, on what, beside what, with which plan. From here
    on SIGTERM is Ctrl-C, so that a stopped bench still cleans up."""
    signal.signal(signal.SIGTERM, _terminate)
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "other_bench_processes_at_start": other_benches(),
        "machine": machine(),
        "plan": {k: v for k, v in vars(args).items() if k != "output"},
    }


class Guarded(Protocol):
    """A run: the servers' instances it started (the live list), the phase it is in,
    its notes, and its cleanup, which returns how many containers it swept."""

    instances: list[str]
    phase: str
    notes: list[str]

    def cleanup(self) -> int: ...


def run_guarded(
    name: str, run: Guarded, document: dict[str, Any], phases: Callable[[], None]
) -> str:
    """Runs `phases`, then the run's cleanup whatever happened, Ctrl-C ignored meanwhile;
    adds the outcome and the noise seen to `document`, and returns the outcome:
    completed, interrupted or failed."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    outcome = "completed"
    began = time.monotonic()
    monitor = NoiseMonitor(run.instances, lambda: run.phase)
    swept = 0
    try:
        with monitor:
            phases()
    except KeyboardInterrupt:
        outcome = "interrupted"
        print(f"{name}: interrupted: deleting the sessions, stopping the servers, sweeping")
    except Exception:
        outcome = "failed"
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        swept = run.cleanup()
        if swept:
            print(f"{name}: swept {swept} leftover containers", flush=True)
    document |= {
        "outcome": outcome,
        "duration_s": round(time.monotonic() - began, 1),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "containers_swept_at_end": swept,
        "notes": run.notes,
        "other_containers": {
            "samples": monitor.samples,
            "samples_with_others": monitor.samples_with_others,
            "max_seen": monitor.max_seen,
            "max_by_phase": monitor.by_phase,
        },
    }
    return outcome


def conclude(name: str, document: dict[str, Any], report: str, output: Path) -> int:
    """Prints the report, writes the document; the exit code of the run's outcome."""
    print(report)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(document, indent=2) + "\n")
    outcome = document["outcome"]
    print(f"{name} {outcome} in {document['duration_s']:.0f} s; results in {output}")
    return EXIT_CODES.get(outcome, 1)
