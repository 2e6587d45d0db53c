"""Planning stages, encoding them for the supervisor, and relaying its frames
back as events (pure logic; the real supervisor is exercised in integration)."""

from __future__ import annotations

import struct
from dataclasses import replace

import pytest

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    RUN_STAGE,
    FileStatus,
    Finished,
    Job,
    LimitKind,
    Output,
    Stage,
    StageFinished,
    StageKind,
    Started,
    Stream,
    TestCase,
    Verdict,
)
from codebeaker.runtimes.supervisor.protocol import (
    FRESH,
    GATE,
    PAUSE,
    Frame,
    FrameType,
    encode_request,
    plan_stages,
)
from codebeaker.runtimes.supervisor.relay import StageTracker
from codebeaker.runtimes.verdict import killed_outcome
from tests.unit.jobs import LIMITS, job_for


def report(exit_code: int = 0, **flags: int) -> Frame:
    values = {
        "exit_code": exit_code,
        "signal": 0,
        "wall_us": 1000,
        "cpu_us": 500,
        "peak_memory": 4096,
        "oom_kills": 0,
        "oom_counted": 1,
        "wall_limit": 0,
        "cpu_limit": 0,
        "stdout_truncated": 0,
        "stderr_truncated": 0,
        **flags,
    }
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    return Frame(FrameType.EXIT, text.encode())


def frame(kind: FrameType, payload: bytes = b"") -> Frame:
    return Frame(kind, payload)


def file_header(status: bytes, kind: bytes, size: int, path: str) -> Frame:
    return frame(FrameType.FILE_HEADER, status + kind + struct.pack(">Q", size) + path.encode())


def test_interpreted_program_is_one_run_stage_with_the_requests_stdin() -> None:
    (plan,) = plan_stages(job_for("python"), {"PATH": "/bin"})
    assert plan.stage == RUN_STAGE and plan.flags == 0
    assert plan.argv == ("python3", "main.py") and plan.stdin == b"plain stdin"


def test_compiled_program_with_cases_gates_on_its_compile_and_restores_per_case() -> None:
    cases = (TestCase(b"1"), TestCase(b"2"))
    plans = plan_stages(job_for("c", cases), {})
    assert [p.stage for p in plans] == [
        COMPILE_STAGE,
        Stage(StageKind.RUN, 1),
        Stage(StageKind.RUN, 2),
    ]
    assert [p.flags for p in plans] == [GATE, FRESH, FRESH]
    assert "main.c" in plans[0].argv and "util.h" not in plans[0].argv
    assert [p.stdin for p in plans] == [b"", b"1", b"2"]


def test_request_puts_every_stages_stdin_after_all_headers() -> None:
    cases = (TestCase(b"first"), TestCase(b"second"))
    job = job_for("python", cases)
    request, after_pause = encode_request(job.files, plan_stages(job, {}))
    assert request.startswith(b"CBX2")
    assert request.endswith(b"firstsecond") and after_pause == b""


def test_a_compile_with_its_own_memory_pauses_before_the_runs() -> None:
    job = replace(
        job_for("c", (TestCase(b"one"), TestCase(b"two"))),
        compile_limits=replace(LIMITS, memory_bytes=LIMITS.memory_bytes * 2),
    )
    plans = plan_stages(job, {})
    assert plans[0].flags == GATE | PAUSE
    request, after_pause = encode_request(job.files, plans)
    assert b"one" not in request  # the cases' stdin waits for the go-on
    assert after_pause == b"Gonetwo"
    tracker = StageTracker(job, plans)
    list(tracker.feed(frame(FrameType.STARTED)))
    list(tracker.feed(report()))
    assert tracker.pause_due  # the compile succeeded: the server's turn


def test_no_pause_after_a_failed_compile() -> None:
    job = replace(job_for("c"), compile_limits=replace(LIMITS, memory_bytes=1))
    tracker = StageTracker(job, plan_stages(job, {}))
    list(tracker.feed(report(exit_code=1)))
    assert not tracker.pause_due


def run_frames(job: Job, frames: list[Frame]) -> list[object]:
    tracker = StageTracker(job, plan_stages(job, {}))
    events: list[object] = []
    for item in frames:
        events += list(tracker.feed(item))
    assert tracker.done
    return events


def test_a_plain_run_with_output_files() -> None:
    job = job_for("python", outputs=("*.txt", "gone"))
    events = run_frames(
        job,
        [
            frame(FrameType.STARTED),
            frame(FrameType.STDOUT, b"hi\n"),
            file_header(b"t", b"f", 99, "b.txt"),
            frame(FrameType.FILE_DATA, b"0123456789"),
            file_header(b"n", b"l", 0, "a.txt"),
            file_header(b"m", b"-", 0, "gone"),
            report(),
            frame(FrameType.END),
        ],
    )
    assert isinstance(events[0], Started)
    assert events[1] == Output(Stream.STDOUT, b"hi\n", RUN_STAGE)
    finished = events[-1]
    assert isinstance(finished, Finished) and len(events) == 3
    assert finished.outcome.verdict is Verdict.OK
    assert [(f.path, f.status) for f in finished.files] == [
        ("a.txt", FileStatus.NOT_REGULAR),
        ("b.txt", FileStatus.TRUNCATED),
        ("gone", FileStatus.MISSING),
    ]
    assert "symbolic link" in finished.files[0].reason
    assert finished.files[1].content == b"0123456789" and finished.files[1].size == 99


def test_a_failed_compile_ends_everything() -> None:
    events = run_frames(
        job_for("c", (TestCase(b"1"),)),
        [
            frame(FrameType.STARTED),
            frame(FrameType.STDERR, b"error: nope\n"),
            report(exit_code=1),
            frame(FrameType.END),
        ],
    )
    stage_done = events[-2]
    assert isinstance(stage_done, StageFinished)
    assert stage_done.result.outcome.verdict is Verdict.COMPILE_ERROR
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.outcome.verdict is Verdict.COMPILE_ERROR and "nope" in finished.outcome.message


def test_cases_are_judged_as_they_end() -> None:
    cases = (TestCase(b"", b"1\n"), TestCase(b"", b"2\n"))
    events = run_frames(
        job_for("python", cases),
        [
            frame(FrameType.STARTED),
            frame(FrameType.STDOUT, b"1\n"),
            report(),
            frame(FrameType.STARTED),
            frame(FrameType.STDOUT, b"1\n"),
            report(),
            frame(FrameType.END),
        ],
    )
    results = [e.result for e in events if isinstance(e, StageFinished)]
    assert [r.outcome.verdict for r in results] == [Verdict.ACCEPTED, Verdict.WRONG_ANSWER]
    outputs = [e for e in events if isinstance(e, Output)]
    assert [o.stage.test_case for o in outputs] == [1, 2]


def test_cut_short_ends_the_running_case_and_the_execution() -> None:
    job = job_for("python", (TestCase(b""), TestCase(b"")))
    tracker = StageTracker(job, plan_stages(job, {}))
    list(tracker.feed(frame(FrameType.STARTED)))
    list(tracker.feed(report()))
    list(tracker.feed(frame(FrameType.STARTED)))
    events = list(tracker.cut_short(killed_outcome(LimitKind.WALL_TIME, LIMITS, 11.0)))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert [c.outcome.verdict for c in finished.test_cases] == [
        Verdict.OK,
        Verdict.TIME_LIMIT_EXCEEDED,
    ]
    assert finished.outcome.verdict is Verdict.TIME_LIMIT_EXCEEDED


def test_frames_after_the_end_are_a_sandbox_failure() -> None:
    job = job_for("python")
    tracker = StageTracker(job, plan_stages(job, {}))
    list(tracker.feed(report()))
    with pytest.raises(SandboxFailure):
        list(tracker.feed(frame(FrameType.STDOUT, b"late")))
