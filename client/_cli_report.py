"""What `codebeaker run` shows while a program runs and what it ends with.

Output is passed through live as raw bytes: the program's stdout to ours, its
stderr to ours, and a compiler's output (both streams) to our stderr, so the
program's stdout stays clean for a pipe. With test cases, each case gets one
line on stderr as it ends and a summary at the end; the cases' own output is
shown only on request. The verdict becomes our exit code (table in
`_cli_support`).
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterable
from typing import BinaryIO

from codebeaker.client._cli_support import (
    EXIT_CASES_FAILED,
    EXIT_COMPILE_ERROR,
    EXIT_LIMIT,
    EXIT_SIGNAL_BASE,
    EXIT_SOFTWARE,
    EXIT_TIMEOUT,
    CliError,
    human_bytes,
    say,
)
from codebeaker.client.types import (
    ExecutionResult,
    ExecutionStatus,
    Finished,
    Output,
    OutputStream,
    Stage,
    StageFinished,
    StageResult,
    Started,
    StreamEvent,
)

# (stage, test case, stream) of output that arrived as events.
_Source = tuple[Stage, int, OutputStream]


def relay(
    events: Iterable[StreamEvent], *, verbose: bool, show_case_output: bool
) -> ExecutionResult:
    """Copy output to ours as it arrives, report stages as they end; return the verdict."""
    streamed: set[_Source] = set()
    reported: set[tuple[Stage, int]] = set()
    result: ExecutionResult | None = None
    for event in events:
        if isinstance(event, Output):
            streamed.add((event.stage, event.test_case, event.stream))
            _show(event.stage, event.test_case, event.stream, event.data, show_case_output)
        elif isinstance(event, StageFinished):
            _stage_ended(event.result, verbose=verbose)
            reported.add((event.result.stage, event.result.test_case))
        elif isinstance(event, Started):
            if verbose:
                say(f"execution {event.execution_id}: {event.language} {event.version}".rstrip())
        elif isinstance(event, Finished):
            result = event.result
    if result is None:  # the stream was cancelled under us
        raise CliError("the execution ended without a verdict", EXIT_SOFTWARE)
    # A server may return some output (e.g. a compiler's) only in the result,
    # and an older one may send no stage events.
    stages: list[StageResult] = [result.compile] if result.compile is not None else []
    stages += result.test_cases
    for stage in stages:
        for stream, data in _outputs(stage.stdout, stage.stderr):
            if (stage.stage, stage.test_case, stream) not in streamed:
                _show(stage.stage, stage.test_case, stream, data, show_case_output)
        if (stage.stage, stage.test_case) not in reported:
            _stage_ended(stage, verbose=verbose)
    if not result.test_cases:
        for stream, data in _outputs(result.stdout, result.stderr):
            if (Stage.RUN, 0, stream) not in streamed:
                _show(Stage.RUN, 0, stream, data, show_case_output)
    return result


def outcome(result: ExecutionResult, *, verbose: bool) -> int:
    """Our exit code for a plain run; explains verdicts a local run cannot have."""
    if verbose:
        _summary_line(result)
    status = result.status
    if status.passed:
        return 0
    if status is ExecutionStatus.RUNTIME_ERROR:
        code = result.exit_code % 256
        return code if code else 1
    exit_code, explanation = _failure(result)
    say(explanation)
    return exit_code


def judged_outcome(result: ExecutionResult, cases: int, *, verbose: bool) -> int:
    """Our exit code with test cases: 0 when every case passed (summary on stderr)."""
    if verbose:
        _summary_line(result)
    if result.status is ExecutionStatus.COMPILE_ERROR:
        exit_code, explanation = _failure(result)
        say(explanation)
        return exit_code
    passed = result.test_cases_passed
    _line(f"{passed}/{cases} passed")
    return 0 if passed == cases and result.ok else EXIT_CASES_FAILED


def case_line(case: StageResult) -> str:
    """`case 3: WRONG_ANSWER (0.012 s) output differs at line 1`."""
    line = f"case {case.test_case}: {case.status.value} ({case.wall_time:.3f} s)"
    if not case.ok and case.message:
        line += f" {case.message}"
    return line


def _stage_ended(stage: StageResult, *, verbose: bool) -> None:
    if stage.stage is Stage.RUN and stage.test_case:
        _line(case_line(stage))
    elif stage.stage is Stage.COMPILE and verbose:
        say(f"compile {stage.status.value} wall={stage.wall_time:.3f}s cpu={stage.cpu_time:.3f}s")


def _show(stage: Stage, case: int, stream: OutputStream, data: bytes, show_cases: bool) -> None:
    if stage is Stage.COMPILE:
        _write(sys.stderr.buffer, data)
    elif case == 0 or show_cases:
        _write(sys.stdout.buffer if stream is OutputStream.STDOUT else sys.stderr.buffer, data)


def _outputs(stdout: bytes, stderr: bytes) -> list[tuple[OutputStream, bytes]]:
    pairs = ((OutputStream.STDOUT, stdout), (OutputStream.STDERR, stderr))
    return [(stream, data) for stream, data in pairs if data]


def _failure(result: ExecutionResult) -> tuple[int, str]:
    """Exit code and explanation of a verdict other than a pass or a plain non-zero exit."""
    status = result.status
    if status is ExecutionStatus.COMPILE_ERROR:
        return EXIT_COMPILE_ERROR, _compile_failure(result)
    if status is ExecutionStatus.SIGNALED:
        exit_code = min(EXIT_SIGNAL_BASE + result.signal, 255)
        explanation = f"killed by signal {result.signal}{_signal_name(result.signal)}"
    elif status is ExecutionStatus.TIME_LIMIT_EXCEEDED:
        exit_code = EXIT_TIMEOUT
        explanation = (
            f"time limit exceeded (wall {result.wall_time:.2f}s, cpu {result.cpu_time:.2f}s)"
        )
    elif status is ExecutionStatus.MEMORY_LIMIT_EXCEEDED:
        exit_code = EXIT_LIMIT
        explanation = f"memory limit exceeded (peak {human_bytes(result.peak_memory_bytes)})"
    elif status is ExecutionStatus.OUTPUT_LIMIT_EXCEEDED:
        exit_code = EXIT_LIMIT
        cut = [
            name
            for name, truncated in (
                ("stdout", result.stdout_truncated),
                ("stderr", result.stderr_truncated),
            )
            if truncated
        ]
        explanation = "output limit exceeded" + (f" ({' and '.join(cut)} cut)" if cut else "")
    elif status is ExecutionStatus.WRONG_ANSWER:
        exit_code = EXIT_CASES_FAILED
        explanation = "wrong answer"
    else:
        exit_code = EXIT_LIMIT
        explanation = "the server gave no verdict"
    return exit_code, explanation + (f": {result.message}" if result.message else "")


def _compile_failure(result: ExecutionResult) -> str:
    # The compiler's output was shown already; the result's message repeats
    # its start after a first line of its own.
    if result.compile is not None and result.compile.message:
        detail = result.compile.message
    else:
        first = result.message.partition("\n")[0]
        detail = first.removeprefix("compilation failed").removeprefix(":").strip()
    return "compilation failed" + (f": {detail}" if detail else "")


def _summary_line(result: ExecutionResult) -> None:
    say(
        f"{result.status.value} exit={result.exit_code} wall={result.wall_time:.3f}s "
        f"cpu={result.cpu_time:.3f}s peak={human_bytes(result.peak_memory_bytes)} "
        f"id={result.execution_id}"
    )


def _line(text: str) -> None:
    """A line of the test-case report on stderr, unprefixed: it is the report itself."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def _write(sink: BinaryIO, data: bytes) -> None:
    sink.write(data)
    sink.flush()


def _signal_name(number: int) -> str:
    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""
