"""Turning domain outcomes and events into codebeaker.v1 messages."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration

from codebeaker.runtimes.model import (
    RUN_STAGE,
    FileStatus,
    Finished,
    LimitKind,
    Outcome,
    OutputFile,
    Stage,
    StageKind,
    StageResult,
    Stream,
    Verdict,
)
from codebeaker.v1 import execution_pb2 as pb

# Output chunks on the wire stay small so a slow reader never holds a huge message.
MAX_CHUNK = 32 * 1024

_STATUS = {
    Verdict.OK: pb.EXECUTION_STATUS_OK,
    Verdict.RUNTIME_ERROR: pb.EXECUTION_STATUS_RUNTIME_ERROR,
    Verdict.SIGNALED: pb.EXECUTION_STATUS_SIGNALED,
    Verdict.TIME_LIMIT_EXCEEDED: pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED,
    Verdict.MEMORY_LIMIT_EXCEEDED: pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED,
    Verdict.OUTPUT_LIMIT_EXCEEDED: pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED,
    Verdict.COMPILE_ERROR: pb.EXECUTION_STATUS_COMPILE_ERROR,
    Verdict.ACCEPTED: pb.EXECUTION_STATUS_ACCEPTED,
    Verdict.WRONG_ANSWER: pb.EXECUTION_STATUS_WRONG_ANSWER,
}
_LIMIT = {
    None: pb.LIMIT_UNSPECIFIED,
    LimitKind.WALL_TIME: pb.LIMIT_WALL_TIME,
    LimitKind.CPU_TIME: pb.LIMIT_CPU_TIME,
    LimitKind.MEMORY: pb.LIMIT_MEMORY,
    LimitKind.OUTPUT: pb.LIMIT_OUTPUT,
}
_STREAM = {Stream.STDOUT: pb.OUTPUT_STREAM_STDOUT, Stream.STDERR: pb.OUTPUT_STREAM_STDERR}
_STAGE = {StageKind.COMPILE: pb.STAGE_COMPILE, StageKind.RUN: pb.STAGE_RUN}
_FILE_STATUS = {
    FileStatus.OK: pb.OUTPUT_FILE_STATUS_OK,
    FileStatus.MISSING: pb.OUTPUT_FILE_STATUS_MISSING,
    FileStatus.NOT_REGULAR: pb.OUTPUT_FILE_STATUS_NOT_REGULAR,
    FileStatus.TRUNCATED: pb.OUTPUT_FILE_STATUS_TRUNCATED,
}
Outputs = Mapping[Stage, tuple[bytes, bytes]]
"""Buffered (stdout, stderr) per stage; empty when the output was streamed."""


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def _outcome_fields(
    outcome: Outcome, output: tuple[bytes, bytes], cut: Collection[Stream]
) -> dict[str, Any]:
    """The fields ExecutionResult and StageResult share."""
    return {
        "status": _STATUS[outcome.verdict],
        "exit_code": outcome.exit_code,
        "signal": outcome.signal,
        "stdout": output[0],
        "stderr": output[1],
        "stdout_truncated": outcome.stdout_truncated or Stream.STDOUT in cut,
        "stderr_truncated": outcome.stderr_truncated or Stream.STDERR in cut,
        "wall_time": duration(outcome.wall_time),
        "cpu_time": duration(outcome.cpu_time),
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "message": outcome.message,
        "limit_exceeded": _LIMIT[outcome.limit_exceeded],
    }


def file_messages(files: Iterable[OutputFile]) -> list[pb.OutputFile]:
    return [
        pb.OutputFile(
            path=f.path,
            status=_FILE_STATUS[f.status],
            content=f.content,
            size=f.size,
            reason=f.reason,
        )
        for f in files
    ]


def _cut_streams(cut: Collection[tuple[Stage, Stream]], stage: Stage) -> set[Stream]:
    return {stream for cut_stage, stream in cut if cut_stage == stage}


def stage_message(
    result: StageResult,
    outputs: Outputs | None = None,
    cut: Collection[tuple[Stage, Stream]] = (),
) -> pb.StageResult:
    output = (outputs or {}).get(result.stage, (b"", b""))
    return pb.StageResult(
        stage=_STAGE[result.stage.kind],
        test_case=result.stage.test_case,
        files=file_messages(result.files),
        **_outcome_fields(result.outcome, output, _cut_streams(cut, result.stage)),
    )


def result_message(
    finished: Finished,
    execution_id: str,
    outputs: Outputs | None = None,
    cut: Collection[tuple[Stage, Stream]] = (),
) -> pb.ExecutionResult:
    """The whole result; `outputs` holds each stage's buffered output (Execute)."""
    run_output = (outputs or {}).get(RUN_STAGE, (b"", b""))
    result = pb.ExecutionResult(
        execution_id=execution_id,
        files=file_messages(finished.files),
        test_cases=[stage_message(case, outputs, cut) for case in finished.test_cases],
        test_cases_passed=finished.test_cases_passed,
        **_outcome_fields(finished.outcome, run_output, _cut_streams(cut, RUN_STAGE)),
    )
    if finished.compile is not None:
        result.compile.CopyFrom(stage_message(finished.compile, outputs, cut))
    return result


def output_chunks(stream: Stream, data: bytes, stage: Stage = RUN_STAGE) -> list[pb.OutputChunk]:
    """Split one piece of output into wire-sized chunks, bytes untouched."""
    return [
        pb.OutputChunk(
            stream=_STREAM[stream],
            data=data[offset : offset + MAX_CHUNK],
            stage=_STAGE[stage.kind],
            test_case=stage.test_case,
        )
        for offset in range(0, len(data), MAX_CHUNK)
    ]
