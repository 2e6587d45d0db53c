"""Verdicts from the supervisor's report: the memory limit where no cgroup counts OOM kills."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from codebeaker.runtimes.model import LimitKind, Verdict
from codebeaker.runtimes.supervisor.protocol import ExitReport
from codebeaker.runtimes.verdict import outcome_from_report
from tests.unit.jobs import LIMITS

NEAR_LIMIT = int(LIMITS.memory_bytes * 0.95)
FAR_BELOW = LIMITS.memory_bytes // 4
PLAIN = ExitReport(
    exit_code=0,
    signal=0,
    wall_us=1000,
    cpu_us=500,
    peak_memory=FAR_BELOW,
    oom_kills=0,
    oom_counted=False,
    wall_limit=False,
    cpu_limit=False,
    stdout_truncated=False,
    stderr_truncated=False,
)


@pytest.mark.parametrize(
    "failure",
    [
        {"exit_code": 1},  # ENOMEM turned into an error exit (Python's MemoryError)
        {"exit_code": 134, "signal": 6},  # an abort (V8's heap out of memory)
        {"exit_code": 137, "signal": 9, "wall_limit": True},  # thrashing until the wall
        {"exit_code": 137, "signal": 9, "cpu_limit": True},
    ],
)
def test_without_an_oom_counter_a_failure_at_the_memory_limit_is_memory_limit_exceeded(
    failure: dict[str, Any],
) -> None:
    outcome = outcome_from_report(replace(PLAIN, peak_memory=NEAR_LIMIT, **failure), LIMITS)
    assert outcome.verdict is Verdict.MEMORY_LIMIT_EXCEEDED
    assert outcome.limit_exceeded is LimitKind.MEMORY


def test_a_failure_far_below_the_limit_keeps_its_own_verdict() -> None:
    outcome = outcome_from_report(replace(PLAIN, exit_code=1), LIMITS)
    assert outcome.verdict is Verdict.RUNTIME_ERROR


def test_a_success_at_the_limit_is_a_success() -> None:
    outcome = outcome_from_report(replace(PLAIN, peak_memory=NEAR_LIMIT), LIMITS)
    assert outcome.verdict is Verdict.OK


def test_with_an_oom_counter_only_a_counted_kill_is_the_memory_limit() -> None:
    counted = replace(PLAIN, oom_counted=True, peak_memory=NEAR_LIMIT, exit_code=1)
    assert outcome_from_report(counted, LIMITS).verdict is Verdict.RUNTIME_ERROR
    killed = replace(counted, exit_code=137, signal=9, oom_kills=1)
    assert outcome_from_report(killed, LIMITS).verdict is Verdict.MEMORY_LIMIT_EXCEEDED


def test_an_output_cut_still_comes_first() -> None:
    report = replace(PLAIN, peak_memory=NEAR_LIMIT, exit_code=137, stdout_truncated=True)
    assert outcome_from_report(report, LIMITS).verdict is Verdict.OUTPUT_LIMIT_EXCEEDED
