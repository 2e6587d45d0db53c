"""`python -m bench`: run the plan, always clean up, print and save the results.

Whatever happens (a failure, Ctrl-C, SIGTERM), servers are stopped by their
phases and a final sweep removes every container this run created; a second
Ctrl-C during that sweep is ignored so it cannot leave containers behind.
"""

from __future__ import annotations

import json
import signal
import time
import traceback
import uuid
from types import FrameType

from bench import plan as plan_module
from bench import report
from bench.bare import host_interpreter
from bench.cleanup import NoiseMonitor, others_running, sweep
from bench.context import Context, say
from bench.machine import machine_info
from bench.output import RunOutcome, document
from bench.phases import run_all
from bench.programs import PROGRAMS
from bench.results import Results
from bench.runtime_specs import served_programs
from bench.server import supports_pool_flag


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    plan = plan_module.parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    ctx = Context(run_id=uuid.uuid4().hex[:10], started=time.time())
    results = Results(plan.languages)
    began = time.monotonic()
    machine: dict[str, object] = {}
    monitor = NoiseMonitor(ctx.instances, lambda: ctx.current_phase)
    outcome = "completed"
    try:
        results.pool_flag = supports_pool_flag()
        if not results.pool_flag:
            results.notes.append(
                "this server has no --pool-size flag yet: the 'warm pool' figures were "
                "measured on a cold server (container started per request)"
            )
        ctx.programs, problem = served_programs(plan.languages)
        if problem:
            results.notes.append(problem)
        ctx.interpreters = {lang: host_interpreter(PROGRAMS[lang]) for lang in plan.languages}
        machine = _machine(ctx)
        busy = others_running([])
        if busy:
            results.notes.append(f"{busy} containers not ours were running at the start")
        with monitor:
            run_all(plan, results, ctx)
    except KeyboardInterrupt:
        outcome = "interrupted"
        say("interrupted: stopping and cleaning up")
    except Exception:
        outcome = "failed"
        traceback.print_exc()
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            removed = sweep(ctx.run_id, ctx.instances, ctx.started)
        except Exception as error:  # report, never mask the run's own outcome
            removed = -1
            say(f"cleanup sweep failed: {error}")
        if removed:
            say(f"swept {removed} leftover containers")
    duration = time.monotonic() - began
    if monitor.max_seen:
        results.notes.append(
            f"other containers were running during {monitor.samples_with_others} of "
            f"{monitor.samples} samples (up to {monitor.max_seen}), in: "
            + ", ".join(monitor.by_phase)
            + "; those figures may be disturbed"
        )
    verdicts = report.targets(results)
    print(report.render(results, verdicts))
    print(f"\nbench {outcome} in {duration:.0f} s; results in {plan.output}")
    run = RunOutcome(outcome, duration, removed)
    data = document(plan, ctx, results, verdicts, machine, monitor, run)
    plan.output.parent.mkdir(parents=True, exist_ok=True)
    plan.output.write_text(json.dumps(data, indent=2) + "\n")
    return {"completed": 0, "interrupted": 130}.get(outcome, 1)


def _machine(ctx: Context) -> dict[str, object]:
    try:
        return machine_info(ctx.interpreters)
    except Exception as error:  # the numbers are still worth saving
        return {"error": str(error)}
