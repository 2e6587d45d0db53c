"""From stage results to the execution's result: compile verdicts, judged test
cases and the summary.

Pure logic over the domain model, fed by the sandbox as its stages end. A
compile that fails ends the execution as COMPILE_ERROR with the compiler's
message; a judged case that exits 0 is ACCEPTED or WRONG_ANSWER by its
comparison; with test cases, the execution passes only if every case does,
and otherwise takes the status of the first case that did not.
"""

from __future__ import annotations

import re
from dataclasses import replace

from codebeaker.runtimes.model import (
    Comparison,
    Finished,
    Job,
    Outcome,
    OutputFile,
    Stage,
    StageKind,
    StageResult,
    TestCase,
    Verdict,
)

COMPILER_MESSAGE_BYTES = 2048  # of the compiler's output quoted in the result's message
_TRAILING_SPACE = re.compile(rb"[ \t\r\f\v]+$", re.MULTILINE)
_PASSED = (Verdict.OK, Verdict.ACCEPTED)


def normalise(data: bytes, comparison: Comparison) -> bytes:
    if comparison is Comparison.EXACT:
        return data
    return _TRAILING_SPACE.sub(b"", data).rstrip(b"\n")


def matches(expected: bytes, actual: bytes, comparison: Comparison) -> bool:
    return normalise(expected, comparison) == normalise(actual, comparison)


def _first_difference(expected: bytes, actual: bytes, comparison: Comparison) -> int:
    """1-based number of the first line that differs."""
    want = normalise(expected, comparison).split(b"\n")
    got = normalise(actual, comparison).split(b"\n")
    for number, (a, b) in enumerate(zip(want, got, strict=False), start=1):
        if a != b:
            return number
    return min(len(want), len(got)) + 1


def judge(outcome: Outcome, case: TestCase, stdout: bytes) -> Outcome:
    """A case's verdict: a clean exit is ACCEPTED or WRONG_ANSWER when it has an expectation."""
    if case.expected_stdout is None or outcome.verdict is not Verdict.OK:
        return outcome
    if matches(case.expected_stdout, stdout, case.comparison):
        return replace(outcome, verdict=Verdict.ACCEPTED, message="output matches")
    line = _first_difference(case.expected_stdout, stdout, case.comparison)
    return replace(outcome, verdict=Verdict.WRONG_ANSWER, message=f"output differs at line {line}")


def compile_verdict(outcome: Outcome) -> Outcome:
    """The compile stage's own result: a compiler that fails is a COMPILE_ERROR;
    a limit it hit keeps its own verdict (and fails the execution all the same)."""
    if outcome.verdict in (Verdict.RUNTIME_ERROR, Verdict.SIGNALED):
        message = f"compiler {outcome.message}"
        return replace(outcome, verdict=Verdict.COMPILE_ERROR, message=message)
    return outcome


def compile_failure(compiled: Outcome, compiler_output: bytes) -> Outcome:
    """The execution's result when its compile failed: nothing ran."""
    text = compiler_output[:COMPILER_MESSAGE_BYTES].decode(errors="replace").strip()
    message = f"compilation failed: {compiled.message}"
    if text:
        message += f"\n{text}"
    return replace(compiled, verdict=Verdict.COMPILE_ERROR, message=message)


def summarize(cases: tuple[StageResult, ...]) -> tuple[Outcome, int]:
    """One outcome for all test cases, and how many passed."""
    passed = sum(1 for case in cases if case.outcome.verdict in _PASSED)
    failed = [case for case in cases if case.outcome.verdict not in _PASSED]
    judged = any(case.outcome.verdict is Verdict.ACCEPTED for case in cases)
    first = failed[0] if failed else cases[-1]
    if failed:
        verdict = first.outcome.verdict
        message = (
            f"{passed} of {len(cases)} test cases passed; "
            f"case {first.stage.test_case}: {first.outcome.message or verdict.value}"
        )
    else:
        verdict = Verdict.ACCEPTED if judged else Verdict.OK
        message = f"all {len(cases)} test cases passed"
    outcome = Outcome(
        verdict=verdict,
        exit_code=first.outcome.exit_code,
        signal=first.outcome.signal,
        wall_time=sum(case.outcome.wall_time for case in cases),
        cpu_time=sum(case.outcome.cpu_time for case in cases),
        peak_memory_bytes=max(case.outcome.peak_memory_bytes for case in cases),
        stdout_truncated=any(case.outcome.stdout_truncated for case in cases),
        stderr_truncated=any(case.outcome.stderr_truncated for case in cases),
        message=message,
        limit_exceeded=first.outcome.limit_exceeded if failed else None,
    )
    return outcome, passed


class ResultBuilder:
    """Collects one job's stages as they end and makes its Finished event.

    Keeps only what judging needs: the head of the compiler's output (for the
    message) and the stdout of judged cases (already capped by the sandbox).
    """

    def __init__(self, job: Job) -> None:
        self._job = job
        self._compiler_output = bytearray()
        self._case_stdout: dict[int, bytearray] = {}
        self._compile: StageResult | None = None
        self._run: StageResult | None = None
        self._cases: list[StageResult] = []

    def output(self, stage: Stage, stdout: bool, data: bytes) -> None:
        if stage.kind is StageKind.COMPILE:
            room = COMPILER_MESSAGE_BYTES - len(self._compiler_output)
            self._compiler_output += data[: max(room, 0)]
        elif stdout and stage.test_case and self._case(stage).expected_stdout is not None:
            self._case_stdout.setdefault(stage.test_case, bytearray()).extend(data)

    def _case(self, stage: Stage) -> TestCase:
        return self._job.test_cases[stage.test_case - 1]

    def stage_ended(
        self, stage: Stage, outcome: Outcome, files: tuple[OutputFile, ...] = ()
    ) -> StageResult:
        """Record a stage's measured outcome; returns it as judged."""
        if stage.kind is StageKind.COMPILE:
            result = StageResult(stage, compile_verdict(outcome), files)
            self._compile = result
        elif stage.test_case:
            stdout = bytes(self._case_stdout.pop(stage.test_case, b""))
            result = StageResult(stage, judge(outcome, self._case(stage), stdout), files)
            self._cases.append(result)
        else:
            result = StageResult(stage, outcome, files)
            self._run = result
        return result

    def finished(self) -> Finished:
        compiled = self._compile
        if compiled and compiled.outcome.verdict is not Verdict.OK:
            outcome = compile_failure(compiled.outcome, bytes(self._compiler_output))
            return Finished(outcome, compile=compiled)
        if self._cases:
            outcome, passed = summarize(tuple(self._cases))
            return Finished(outcome, compiled, (), tuple(self._cases), passed)
        if self._run is None:
            raise ValueError("the execution ended before its program ran")
        return Finished(self._run.outcome, compiled, self._run.files)
