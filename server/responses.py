"""Turning domain outcomes and events into codebeaker.v1 messages."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from codebeaker.runtimes.model import LimitKind, Outcome, Stream, Verdict
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
}
_LIMIT = {
    None: pb.LIMIT_UNSPECIFIED,
    LimitKind.WALL_TIME: pb.LIMIT_WALL_TIME,
    LimitKind.CPU_TIME: pb.LIMIT_CPU_TIME,
    LimitKind.MEMORY: pb.LIMIT_MEMORY,
    LimitKind.OUTPUT: pb.LIMIT_OUTPUT,
}
_STREAM = {Stream.STDOUT: pb.OUTPUT_STREAM_STDOUT, Stream.STDERR: pb.OUTPUT_STREAM_STDERR}


def duration(seconds: float) -> Duration:
    value = Duration()
    value.FromNanoseconds(round(seconds * 1e9))
    return value


def result_message(
    outcome: Outcome, execution_id: str, stdout: bytes = b"", stderr: bytes = b""
) -> pb.ExecutionResult:
    return pb.ExecutionResult(
        status=_STATUS[outcome.verdict],
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        stdout=stdout,
        stderr=stderr,
        stdout_truncated=outcome.stdout_truncated,
        stderr_truncated=outcome.stderr_truncated,
        wall_time=duration(outcome.wall_time),
        cpu_time=duration(outcome.cpu_time),
        peak_memory_bytes=outcome.peak_memory_bytes,
        execution_id=execution_id,
        message=outcome.message,
        limit_exceeded=_LIMIT[outcome.limit_exceeded],
    )


def output_chunks(stream: Stream, data: bytes) -> list[pb.OutputChunk]:
    """Split one piece of output into wire-sized chunks, bytes untouched."""
    return [
        pb.OutputChunk(stream=_STREAM[stream], data=data[offset : offset + MAX_CHUNK])
        for offset in range(0, len(data), MAX_CHUNK)
    ]
