"""What `python -m bench.operations` prints: a table of the same-run ratios and PASS/MISS per
target; and whether another benchmark runs beside it (its figures would be disturbed)."""

from __future__ import annotations

import os
import subprocess
from typing import Any

TARGET_OVERHEAD_MS = {"sqlite": 10.0, "redis": 15.0}


def other_benches() -> list[str]:
    """Process ids of other `python -m bench…` runs (not this one nor its parent)."""
    found = subprocess.run(
        ["pgrep", "-f", "python -m bench"], capture_output=True, text=True, check=False
    )
    mine = {str(os.getpid()), str(os.getppid())}
    return [pid for pid in found.stdout.split() if pid not in mine]


def all_once(burst: dict[str, Any]) -> bool:
    """Every job done, SUCCEEDED with the right output, run exactly once (operations and log)."""
    jobs = burst["jobs"]
    return bool(
        burst["distinct_operations"] == burst["succeeded_with_hello"] == jobs
        and burst["log_started_once"] == burst["log_succeeded_once"] == jobs
        and burst["distinct_execution_ids"] == jobs
        and burst["attempts_not_1"] == burst["log_started_more_than_once"] == 0
    )


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def render(document: dict[str, Any]) -> str:
    lines = [
        "| store | Execute p50 / p90 ms | submit-to-done p50 / p90 ms | overhead p50 / p90 ms "
        "| ratio p50 | burst: queue vs Execute x8 | all done once |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for store, found in document["stores"].items():
        lat, burst = found["latency"], found["burst"]
        e, q, queue = lat["execute"], lat["submit_to_done"], burst["queue"]
        lines.append(
            f"| {store} | {e.get('p50_ms')} / {e.get('p90_ms')} | {q.get('p50_ms')} / "
            f"{q.get('p90_ms')} | {lat.get('overhead_p50_ms')} / {lat.get('overhead_p90_ms')} "
            f"| {lat.get('ratio_p50')} | {queue['jobs']} jobs: {queue['total_seconds']} s vs "
            f"{burst['execute']['total_seconds']} s = {burst['ratio']}x | {all_once(queue)} |"
        )
        target = TARGET_OVERHEAD_MS.get(store)
        overhead = lat.get("overhead_p50_ms")
        if target is not None and overhead is not None:
            verdicts.append(
                f"[{_verdict(overhead <= target)}] {store}: submit-to-done overhead (p50) <= "
                f"{target:.0f} ms: {overhead} ms; parts (p50, ms): "
                f"{lat.get('submit_to_done_parts_p50_ms')}"
            )
        verdicts.append(
            f"[{_verdict(all_once(queue))}] {store}: {queue['jobs']} at once all done, none "
            f"lost or run twice; Execute errors {burst['execute']['errors']}"
        )
    split = document.get("split")
    if split:
        verdicts.append(
            f"[{_verdict(all_once(split) and min(split['started_by_server']) > 0)}] two servers "
            f"on one Redis: {split['jobs']} submitted to the first, started by each "
            f"{split['started_by_server']} in {split['total_seconds']} s"
        )
    load = (document["load_average_at_start"], document.get("load_average_at_end"))
    notes = [f"load average (1, 5, 15 min) at start {load[0]}, at end {load[1]}"]
    if document["other_bench_processes_at_start"]:
        notes.append(f"other bench processes ran: {document['other_bench_processes_at_start']}")
    return "\n".join([*lines, "", *verdicts, "", *(f"note: {n}" for n in notes)])
