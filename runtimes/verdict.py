"""Turning measurements from outside the program into a verdict.

The order matters: a limit the supervisor enforced (output, then time) explains
the kill that followed it; an OOM kill counted by the cgroup explains a SIGKILL
nobody else sent; only then do the program's own signal and exit code speak.
"""

from __future__ import annotations

import signal as signals

from codebeaker.runtimes.model import Limits, Outcome, Verdict
from codebeaker.runtimes.protocol import ExitReport


def signal_name(number: int) -> str:
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _fmt_seconds(value: float) -> str:
    return f"{value:g}s"


def outcome_from_report(report: ExitReport, limits: Limits) -> Outcome:
    """The verdict for a run whose supervisor reported its exit."""
    cpu_time = report.cpu_us / 1e6
    truncated = report.stdout_truncated or report.stderr_truncated
    if truncated:
        streams = [
            name
            for name, cut in (
                ("stdout", report.stdout_truncated),
                ("stderr", report.stderr_truncated),
            )
            if cut
        ]
        verdict = Verdict.OUTPUT_LIMIT_EXCEEDED
        message = f"{' and '.join(streams)} exceeded {limits.max_output_bytes} bytes"
    elif report.cpu_limit:
        verdict = Verdict.TIME_LIMIT_EXCEEDED
        message = f"CPU time limit of {_fmt_seconds(limits.cpu_time)} exceeded"
    elif report.wall_limit:
        verdict = Verdict.TIME_LIMIT_EXCEEDED
        message = f"wall time limit of {_fmt_seconds(limits.wall_time)} exceeded"
    elif report.oom_kills > 0:
        verdict = Verdict.MEMORY_LIMIT_EXCEEDED
        message = f"memory limit of {limits.memory_bytes} bytes exceeded"
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
        cpu_time=cpu_time,
        peak_memory_bytes=report.peak_memory,
        stdout_truncated=report.stdout_truncated,
        stderr_truncated=report.stderr_truncated,
        message=message,
    )


def wall_timeout_outcome(limits: Limits, wall_time: float) -> Outcome:
    """The verdict when the server's own clock had to stop the sandbox."""
    return Outcome(
        verdict=Verdict.TIME_LIMIT_EXCEEDED,
        exit_code=128 + signals.SIGKILL,
        signal=int(signals.SIGKILL),
        wall_time=wall_time,
        cpu_time=0.0,
        peak_memory_bytes=0,
        stdout_truncated=False,
        stderr_truncated=False,
        message=f"wall time limit of {_fmt_seconds(limits.wall_time)} exceeded",
    )
