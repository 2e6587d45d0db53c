"""The JSON written to bench/results/latest.json: the same data as the printed report."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

from bench.cleanup import NoiseMonitor
from bench.context import Context
from bench.plan import Plan
from bench.report import Target, comparisons
from bench.results import Results


@dataclass(frozen=True)
class RunOutcome:
    outcome: str  # completed, interrupted or failed
    duration_s: float
    swept: int  # containers the final sweep removed (-1: the sweep failed)


def _plan_json(plan: Plan) -> dict[str, object]:
    counts = {
        "bare": plan.bare,
        "engine": plan.engine,
        "cold": plan.cold,
        "warm": plan.warm,
        "stream": plan.stream,
        "peers": plan.peers,
    }
    return {
        "quick": plan.quick,
        "languages": plan.languages,
        "skip_peers": plan.skip_peers,
        "runs": {name: {"warmup": c.warmup, "runs": c.runs} for name, c in counts.items()},
        "throughput_window_s": plan.window,
        "throughput_warmup_s": plan.window_warmup,
        "concurrency": plan.concurrency,
        "pool_size": plan.pool_size,
        "paced_gap_s": plan.gap,
    }


def document(
    plan: Plan,
    ctx: Context,
    results: Results,
    verdicts: list[Target],
    machine: dict[str, object],
    monitor: NoiseMonitor,
    run: RunOutcome,
) -> dict[str, object]:
    load_at_end = [round(x, 2) for x in os.getloadavg()]
    return {
        "timestamp": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "outcome": run.outcome,
        "duration_s": round(run.duration_s, 1),
        "phase_seconds": ctx.phase_seconds,
        "run_id": ctx.run_id,
        "plan": _plan_json(plan),
        "machine": {**machine, "load_average_at_end": load_at_end},
        **results.to_json(),
        "comparisons": comparisons(results),
        "targets": [t.to_json() for t in verdicts],
        "containers_swept_at_end": run.swept,
        "other_containers": {
            "samples": monitor.samples,
            "samples_with_others": monitor.samples_with_others,
            "max_seen": monitor.max_seen,
            "max_by_phase": monitor.by_phase,
        },
    }
