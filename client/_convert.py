"""The one place where SDK values and `codebeaker.v1` messages meet.

Both clients build requests and read responses through these functions, so the
sync and asyncio APIs cannot drift apart, and no protobuf type escapes into the
public API. Sessions' own messages are read in `_session_convert`, with the
helpers here (durations, limits, results, output files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.duration_pb2 import Duration

from codebeaker.client.types import (
    Comparison,
    ExecutionResult,
    ExecutionStatus,
    File,
    Files,
    Finished,
    Limit,
    Limits,
    Output,
    OutputFile,
    OutputFileStatus,
    OutputStream,
    Package,
    Packages,
    Runtime,
    Source,
    Stage,
    StageFinished,
    StageResult,
    Started,
    StreamEvent,
    TestCase,
)
from codebeaker.v1 import execution_pb2 as pb

_STATUS_PREFIX = "EXECUTION_STATUS_"
_COMPARISONS = {
    Comparison.EXACT: pb.COMPARISON_EXACT,
    Comparison.IGNORE_TRAILING_WHITESPACE: pb.COMPARISON_IGNORE_TRAILING_WHITESPACE,
}
_FILE_STATUSES = {
    pb.OUTPUT_FILE_STATUS_OK: OutputFileStatus.OK,
    pb.OUTPUT_FILE_STATUS_MISSING: OutputFileStatus.MISSING,
    pb.OUTPUT_FILE_STATUS_NOT_REGULAR: OutputFileStatus.NOT_REGULAR,
    pb.OUTPUT_FILE_STATUS_TRUNCATED: OutputFileStatus.TRUNCATED,
}


def build_spec(
    language: str,
    source: Source | None,
    *,
    files: Files | None = None,
    entrypoint: str | None = None,
    stdin: bytes | str = b"",
    args: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    limits: Limits | None = None,
    compile_limits: Limits | None = None,
    output_files: Iterable[str] = (),
    test_cases: Iterable[TestCase] = (),
    version: str | None = None,
    request_id: str | None = None,
    packages: Packages = (),
) -> pb.ExecutionSpec:
    """The wire form of one program; the server validates its meaning."""
    for name, value in (("args", args), ("output_files", output_files)):
        if isinstance(value, str | bytes):
            # A lone string would silently become one item per character.
            raise TypeError(f"{name} must be a sequence of strings, not a single string")
    spec = pb.ExecutionSpec(
        language=language,
        version=version or "",
        source=as_bytes(source) if source is not None else b"",
        files=[pb.File(path=f.path, content=f.content) for f in _as_files(files)],
        entrypoint=entrypoint or "",
        stdin=as_bytes(stdin),
        args=list(args),
        env=dict(env or {}),
        request_id=request_id or "",
        output_files=list(output_files),
        test_cases=[_test_case_to_proto(case) for case in test_cases],
        packages=package_requests(packages),
    )
    if limits is not None:
        spec.limits.CopyFrom(limits_to_proto(limits))
    if compile_limits is not None:
        spec.compile_limits.CopyFrom(limits_to_proto(compile_limits))
    return spec


def package_requests(packages: Packages) -> list[pb.PackageRequest]:
    """`Packages` in their wire form."""
    if isinstance(packages, str | bytes):
        raise TypeError("packages must be a sequence of names (or a mapping), not a single string")
    if isinstance(packages, Mapping):
        return [pb.PackageRequest(name=n, version=v) for n, v in packages.items()]
    return [pb.PackageRequest(name=name) for name in packages]


def _outcome_fields(message: pb.ExecutionResult | pb.StageResult) -> dict[str, Any]:
    """The fields a whole result and a stage's result share."""
    return {
        "status": _status_from_proto(message.status),
        "exit_code": message.exit_code,
        "signal": message.signal,
        "stdout": message.stdout,
        "stderr": message.stderr,
        "stdout_truncated": message.stdout_truncated,
        "stderr_truncated": message.stderr_truncated,
        "wall_time": seconds(message.wall_time),
        "cpu_time": seconds(message.cpu_time),
        "peak_memory_bytes": message.peak_memory_bytes,
        "message": message.message,
        "limit_exceeded": _limit_from_proto(message.limit_exceeded),
        "files": files_from_proto(message.files),
    }


def result_from_proto(message: pb.ExecutionResult) -> ExecutionResult:
    return ExecutionResult(
        execution_id=message.execution_id,
        compile=stage_from_proto(message.compile) if message.HasField("compile") else None,
        test_cases=tuple(stage_from_proto(case) for case in message.test_cases),
        test_cases_passed=message.test_cases_passed,
        **_outcome_fields(message),
    )


def stage_from_proto(message: pb.StageResult) -> StageResult:
    return StageResult(
        stage=_stage_from_proto(message.stage),
        test_case=message.test_case,
        **_outcome_fields(message),
    )


def event_from_proto(message: pb.ExecuteStreamResponse) -> StreamEvent | None:
    """The event a stream message carries; None for a kind this SDK predates."""
    kind = message.WhichOneof("event")
    if kind == "started":
        started = message.started
        return Started(
            execution_id=started.execution_id,
            language=started.language,
            version=started.version,
        )
    if kind == "output":
        chunk = message.output
        # UNSPECIFIED is only the proto3 default; keeping the bytes as stdout
        # beats dropping them.
        stream = (
            OutputStream.STDERR if chunk.stream == pb.OUTPUT_STREAM_STDERR else OutputStream.STDOUT
        )
        return Output(
            stream=stream,
            data=chunk.data,
            stage=_stage_from_proto(chunk.stage),
            test_case=chunk.test_case,
        )
    if kind == "stage_result":
        return StageFinished(result=stage_from_proto(message.stage_result))
    if kind == "result":
        return Finished(result=result_from_proto(message.result))
    return None


def runtimes_from_proto(message: pb.ListRuntimesResponse) -> list[Runtime]:
    return [
        Runtime(
            language=runtime.language,
            version=runtime.version,
            aliases=tuple(runtime.aliases),
            file_name=runtime.file_name,
            compiled=runtime.compiled,
            packages=tuple(Package(p.name, p.version) for p in runtime.packages),
            installable={p.name: p.version for p in runtime.installable},
            version_aliases=tuple(runtime.version_aliases),
            is_default=runtime.is_default,
        )
        for runtime in message.runtimes
    ]


def as_bytes(data: bytes | str) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _as_files(files: Files | None) -> list[File]:
    if files is None:
        return []
    if isinstance(files, Mapping):
        return [File(path=path, content=as_bytes(content)) for path, content in files.items()]
    return list(files)


def _test_case_to_proto(case: TestCase) -> pb.TestCase:
    if not isinstance(case, TestCase):
        raise TypeError(f"test_cases must hold TestCase values, not {type(case).__name__}")
    message = pb.TestCase(
        stdin=as_bytes(case.stdin), comparison=_COMPARISONS[Comparison(case.comparison)]
    )
    if case.expected_stdout is not None:
        message.expected_stdout = as_bytes(case.expected_stdout)
    return message


def limits_to_proto(limits: Limits) -> pb.ResourceLimits:
    message = pb.ResourceLimits(
        memory_bytes=limits.memory_bytes or 0,
        max_processes=limits.max_processes or 0,
        max_output_bytes=limits.max_output_bytes or 0,
    )
    if limits.wall_time is not None:
        message.wall_time.CopyFrom(duration(limits.wall_time))
    if limits.cpu_time is not None:
        message.cpu_time.CopyFrom(duration(limits.cpu_time))
    return message


def files_from_proto(files: Iterable[pb.OutputFile]) -> tuple[OutputFile, ...]:
    return tuple(
        OutputFile(
            path=f.path,
            # UNSPECIFIED also stands for a status added after this SDK was built.
            status=_FILE_STATUSES.get(f.status, OutputFileStatus.UNSPECIFIED),
            content=f.content,
            size=f.size,
            reason=f.reason,
        )
        for f in files
    )


def _stage_from_proto(value: pb.Stage.ValueType) -> Stage:
    # Older servers leave a chunk's stage unset: it was always the program's.
    return Stage.COMPILE if value == pb.STAGE_COMPILE else Stage.RUN


def duration(amount: float) -> Duration:
    """A protobuf Duration of `amount` seconds."""
    message = Duration()
    message.FromNanoseconds(round(amount * 1_000_000_000))
    return message


def seconds(message: Duration) -> float:
    """A protobuf Duration as float seconds."""
    return message.ToNanoseconds() / 1_000_000_000


def limits_from_proto(message: pb.ResourceLimits) -> Limits:
    """Limits as the server reports them; unset (zero) fields are None."""
    return Limits(
        wall_time=seconds(message.wall_time) if message.HasField("wall_time") else None,
        cpu_time=seconds(message.cpu_time) if message.HasField("cpu_time") else None,
        memory_bytes=message.memory_bytes or None,
        max_processes=message.max_processes or None,
        max_output_bytes=message.max_output_bytes or None,
    )


def _limit_from_proto(value: pb.Limit.ValueType) -> Limit | None:
    if value == pb.LIMIT_UNSPECIFIED:
        return None
    try:
        return Limit(pb.Limit.Name(value).removeprefix("LIMIT_"))
    except ValueError:
        return Limit.UNSPECIFIED  # a limit added after this SDK was built


def _status_from_proto(value: pb.ExecutionStatus.ValueType) -> ExecutionStatus:
    try:
        return ExecutionStatus(pb.ExecutionStatus.Name(value).removeprefix(_STATUS_PREFIX))
    except ValueError:
        # A verdict added after this SDK was built.
        return ExecutionStatus.UNSPECIFIED
