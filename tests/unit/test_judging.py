"""Judging test cases and summing up stages (pure logic)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codebeaker.runtimes.judging import ResultBuilder, judge, matches
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    Comparison,
    LimitKind,
    Outcome,
    Stage,
    StageKind,
    TestCase,
    Verdict,
)
from tests.unit.jobs import job_for

OK = Outcome(Verdict.OK, 0, 0, 0.1, 0.05, 1000, False, False)
FAILED = replace(OK, verdict=Verdict.RUNTIME_ERROR, exit_code=1, message="exited with code 1")


@pytest.mark.parametrize(
    ("expected", "actual", "comparison", "same"),
    [
        (b"1\n2\n", b"1\n2\n", Comparison.EXACT, True),
        (b"1\n2\n", b"1\n2", Comparison.EXACT, False),
        (b"1\n2\n", b"1  \n2\t\n\n\n", Comparison.IGNORE_TRAILING_WHITESPACE, True),
        (b"1 2\n", b"1  2\n", Comparison.IGNORE_TRAILING_WHITESPACE, False),
        (b"a\r\n", b"a\n", Comparison.IGNORE_TRAILING_WHITESPACE, True),
        (b"", b"\n\n", Comparison.IGNORE_TRAILING_WHITESPACE, True),
    ],
)
def test_comparisons(expected: bytes, actual: bytes, comparison: Comparison, same: bool) -> None:
    assert matches(expected, actual, comparison) is same


def test_judge_only_clean_exits_with_an_expectation() -> None:
    case = TestCase(b"", b"1\n2\n")
    assert judge(OK, case, b"1\n2\n").verdict is Verdict.ACCEPTED
    wrong = judge(OK, case, b"1\n3\n")
    assert wrong.verdict is Verdict.WRONG_ANSWER and wrong.message == "output differs at line 2"
    assert judge(FAILED, case, b"1\n2\n") is FAILED
    assert judge(OK, TestCase(b""), b"anything") is OK


def test_compile_failure_ends_the_execution_with_the_compilers_message() -> None:
    builder = ResultBuilder(job_for("c"))
    builder.output(COMPILE_STAGE, False, b"main.c:1: error: expected ';'\n")
    compiled = builder.stage_ended(COMPILE_STAGE, FAILED)
    assert compiled.outcome.verdict is Verdict.COMPILE_ERROR
    finished = builder.finished()
    assert finished.outcome.verdict is Verdict.COMPILE_ERROR
    assert "expected ';'" in finished.outcome.message
    assert finished.compile == compiled and finished.test_cases == ()


def test_compile_limit_keeps_its_verdict_on_the_stage_only() -> None:
    builder = ResultBuilder(job_for("c"))
    slow = replace(OK, verdict=Verdict.TIME_LIMIT_EXCEEDED, limit_exceeded=LimitKind.WALL_TIME)
    assert builder.stage_ended(COMPILE_STAGE, slow).outcome.verdict is Verdict.TIME_LIMIT_EXCEEDED
    finished = builder.finished()
    assert finished.outcome.verdict is Verdict.COMPILE_ERROR
    assert finished.outcome.limit_exceeded is LimitKind.WALL_TIME


def test_summary_takes_the_first_failing_case() -> None:
    cases = (TestCase(b"", b"a\n"), TestCase(b"", b"b\n"), TestCase(b"", b"c\n"))
    builder = ResultBuilder(job_for("python", cases))
    for number, printed in enumerate((b"a\n", b"x\n", b"c\n"), start=1):
        stage = Stage(StageKind.RUN, number)
        builder.output(stage, True, printed)
        builder.stage_ended(stage, replace(OK, wall_time=0.5, peak_memory_bytes=number))
    finished = builder.finished()
    assert [c.outcome.verdict for c in finished.test_cases] == [
        Verdict.ACCEPTED,
        Verdict.WRONG_ANSWER,
        Verdict.ACCEPTED,
    ]
    assert finished.outcome.verdict is Verdict.WRONG_ANSWER
    assert finished.test_cases_passed == 2
    assert finished.outcome.wall_time == pytest.approx(1.5)
    assert finished.outcome.peak_memory_bytes == 3
    assert "case 2" in finished.outcome.message


def test_unjudged_cases_that_all_exit_cleanly_are_ok() -> None:
    builder = ResultBuilder(job_for("python", (TestCase(b"1"), TestCase(b"2"))))
    for number in (1, 2):
        builder.stage_ended(Stage(StageKind.RUN, number), OK)
    finished = builder.finished()
    assert finished.outcome.verdict is Verdict.OK and finished.test_cases_passed == 2
