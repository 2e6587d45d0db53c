"""Turning measurements from outside the program into a verdict.

The order matters: a limit the supervisor enforced (output, then time) explains
the kill that followed it; an OOM kill counted by the cgroup explains a SIGKILL
nobody else sent; only then do the program's own signal and exit code speak.
Under gVisor no cgroup counts OOM kills: its kernel refuses allocations past the
limit, so a run that failed with its peak at the limit hit the memory limit
(before the time limits: a program short of memory may thrash until one).
When the sandbox dies without a report (gVisor's sandbox is OOM-killed whole
by the host cgroup), the engine's record of that OOM kill is the verdict.
"""

from __future__ import annotations

import signal as signals

from codebeaker.runtimes.model import LimitKind, Limits, Outcome, Verdict
from codebeaker.runtimes.supervisor.protocol import ExitReport

KILLED = 128 + signals.SIGKILL
# Without an OOM kill counter, a failed run whose peak memory came this close to
# its limit hit the limit (gVisor's own accounting refuses the rest).
MEMORY_REACHED = 0.85


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _limit_message(kind: LimitKind, limits: Limits) -> str:
    return {
        LimitKind.WALL_TIME: f"wall time limit of {_seconds(limits.wall_time)} exceeded",
        LimitKind.CPU_TIME: f"CPU time limit of {_seconds(limits.cpu_time)} exceeded",
        LimitKind.MEMORY: f"memory limit of {limits.memory_bytes} bytes exceeded",
        LimitKind.OUTPUT: f"output exceeded {limits.max_output_bytes} bytes",
    }[kind]


_LIMIT_VERDICTS = {
    LimitKind.OUTPUT: Verdict.OUTPUT_LIMIT_EXCEEDED,
    LimitKind.CPU_TIME: Verdict.TIME_LIMIT_EXCEEDED,
    LimitKind.WALL_TIME: Verdict.TIME_LIMIT_EXCEEDED,
    LimitKind.MEMORY: Verdict.MEMORY_LIMIT_EXCEEDED,
}


def _limit_hit(report: ExitReport, limits: Limits) -> LimitKind | None:
    if report.stdout_truncated or report.stderr_truncated:
        return LimitKind.OUTPUT
    if _memory_reached(report, limits):
        return LimitKind.MEMORY
    if report.cpu_limit:
        return LimitKind.CPU_TIME
    if report.wall_limit:
        return LimitKind.WALL_TIME
    if report.oom_kills > 0:
        return LimitKind.MEMORY
    return None


def _memory_reached(report: ExitReport, limits: Limits) -> bool:
    """Where no cgroup counts OOM kills (gVisor refuses allocations past the limit
    instead: the program gets ENOMEM, or thrashes until a time limit), a run that
    failed with its peak memory at the limit is taken to have hit it."""
    failed = report.exit_code != 0 or report.cpu_limit or report.wall_limit
    reached = report.peak_memory >= limits.memory_bytes * MEMORY_REACHED
    return not report.oom_counted and failed and reached


def outcome_from_report(report: ExitReport, limits: Limits) -> Outcome:
    """The verdict for a run whose supervisor reported its exit."""
    limit = _limit_hit(report, limits)
    if limit is not None:
        verdict = _LIMIT_VERDICTS[limit]
        message = _limit_message(limit, limits)
    elif report.signal:
        verdict = Verdict.SIGNALED
        message = f"killed by {signal_name(report.signal)}"
    elif report.exit_code == 0:
        verdict = Verdict.OK
        message = ""
    else:
        verdict = Verdict.RUNTIME_ERROR
        message = f"exited with code {report.exit_code}"
    return Outcome(
        verdict=verdict,
        exit_code=report.exit_code,
        signal=report.signal,
        wall_time=report.wall_us / 1e6,
        cpu_time=report.cpu_us / 1e6,
        peak_memory_bytes=report.peak_memory,
        stdout_truncated=report.stdout_truncated,
        stderr_truncated=report.stderr_truncated,
        message=message,
        limit_exceeded=limit,
    )


def killed_outcome(kind: LimitKind, limits: Limits, wall_time: float) -> Outcome:
    """The verdict when the sandbox had to be stopped from outside: the server's
    clock ran out (the supervisor missed the wall limit) or the engine recorded
    an OOM kill of the whole sandbox."""
    return Outcome(
        verdict=_LIMIT_VERDICTS[kind],
        exit_code=KILLED,
        signal=int(signals.SIGKILL),
        wall_time=wall_time,
        cpu_time=0.0,
        peak_memory_bytes=limits.memory_bytes if kind is LimitKind.MEMORY else 0,
        stdout_truncated=False,
        stderr_truncated=False,
        message=_limit_message(kind, limits),
        limit_exceeded=kind,
    )
