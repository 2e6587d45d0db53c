"""The server's half of the cb-supervisor wire protocol (see PROTOCOL.md beside it).

Pure byte handling, no I/O: planning a job's stages (compile, run, test
cases), encoding the request that carries them into a waiting container, and
incrementally decoding the frames the supervisor sends back. The program
never writes to the supervisor's stdout directly (the supervisor frames
everything), so nothing it prints can forge a frame.
"""

from __future__ import annotations

import enum
import functools
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    NO_OUTPUT_FILES,
    RUN_STAGE,
    FileStatus,
    Job,
    Limits,
    OutputFile,
    OutputFiles,
    SourceFile,
    Stage,
    StageKind,
)

MAGIC = b"CBX2"
MAX_FRAME_PAYLOAD = 65536
_FRAME_HEADER = struct.Struct(">BI")
_FILE_HEADER = struct.Struct(">BBQ")
GATE = 1  # stage flag: later stages run only if this one succeeds (a compile)
FRESH = 2  # stage flag: start from the files as the first FRESH stage found them
PAUSE = 4  # stage flag: wait for the server's go-on byte (GO) before the next stage
GO = b"G"


class FrameType(enum.Enum):
    STARTED = ord("S")
    STDOUT = ord("1")
    STDERR = ord("2")
    FILE_HEADER = ord("H")
    FILE_DATA = ord("D")
    EXIT = ord("X")
    END = ord("E")
    FATAL = ord("F")
    READY = ord("R")  # host mode: the next request's sandbox is set up


@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes


@dataclass(frozen=True)
class ExitReport:
    exit_code: int
    signal: int
    wall_us: int
    cpu_us: int
    peak_memory: int
    oom_kills: int
    oom_counted: bool
    wall_limit: bool
    cpu_limit: bool
    stdout_truncated: bool
    stderr_truncated: bool


@dataclass(frozen=True)
class StagePlan:
    """One stage of the request: a command, its limits, stdin and output files."""

    stage: Stage
    argv: tuple[str, ...]
    env: Mapping[str, str]
    limits: Limits
    stdin: bytes = b""
    flags: int = 0
    outputs: OutputFiles = NO_OUTPUT_FILES


def plan_stages(job: Job, env: Mapping[str, str]) -> tuple[StagePlan, ...]:
    """The compile (if any) gating the run, or the runs of the test cases."""
    stages: list[StagePlan] = []
    if job.language.compiled:
        limits = job.compile_limits or job.limits
        # A compile with a memory limit of its own runs in a sandbox sized for
        # it; the server lowers it to the run's in the pause that follows.
        flags = GATE | (PAUSE if limits.memory_bytes != job.limits.memory_bytes else 0)
        stages.append(StagePlan(COMPILE_STAGE, job.compile_argv(), env, limits, flags=flags))
    run = functools.partial(StagePlan, argv=job.argv(), env=env, limits=job.limits)
    if not job.test_cases:
        stages.append(run(RUN_STAGE, stdin=job.stdin, outputs=job.output_files))
    for number, case in enumerate(job.test_cases, start=1):
        stage = Stage(StageKind.RUN, number)
        stages.append(run(stage, stdin=case.stdin, flags=FRESH, outputs=job.output_files))
    return tuple(stages)


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _blob32(data: bytes) -> bytes:
    return _u32(len(data)) + data


def _strings(values: Iterable[bytes]) -> list[bytes]:
    items = list(values)
    return [_u32(len(items)), *(_blob32(v) for v in items)]


def _milliseconds(seconds: float) -> bytes:
    return _u64(math.ceil(seconds * 1000))


def encode_request(
    files: Iterable[SourceFile], stages: Iterable[StagePlan], cpu_quota: float = 0.0
) -> tuple[bytes, bytes]:
    """The whole request, every stage's stdin included, ready to write to the
    container: what to send at once, and what to send once a PAUSE stage has
    succeeded and the server has done its part (empty without a pause).

    `cpu_quota` is the sandbox's CPU quota in CPUs (0: unknown); it bounds the
    CPU time a supervisor without cgroup files reads from /proc.
    """
    file_list = list(files)
    stage_list = list(stages)
    parts = [MAGIC, _u32(round(cpu_quota * 1000)), _u32(len(file_list))]
    for item in file_list:
        parts += [_blob32(item.path.encode()), _u32(item.mode), _u64(len(item.content))]
        parts.append(item.content)
    parts.append(_u32(len(stage_list)))
    for plan in stage_list:
        parts.append(_u32(plan.flags))
        parts += _strings(a.encode() for a in plan.argv)
        parts += _strings(f"{k}={v}".encode() for k, v in plan.env.items())
        parts += [
            _milliseconds(plan.limits.wall_time),
            _milliseconds(plan.limits.cpu_time),
            _u64(plan.limits.max_output_bytes),
        ]
        parts += _strings(p.encode() for p in plan.outputs.patterns)
        parts += [_u64(plan.outputs.file_cap), _u64(plan.outputs.total_cap)]
        parts.append(_u64(len(plan.stdin)))
    later: list[bytes] = []
    for plan in stage_list:
        (later if later else parts).append(plan.stdin)
        if plan.flags & PAUSE:
            later.append(GO)
    return b"".join(parts), b"".join(later)


_FILE_STATUS = {
    ord("r"): FileStatus.OK,
    ord("t"): FileStatus.TRUNCATED,
    ord("n"): FileStatus.NOT_REGULAR,
    ord("m"): FileStatus.MISSING,
}
_FILE_KIND = {
    ord("d"): "a directory",
    ord("l"): "a symbolic link",
    ord("p"): "a FIFO",
    ord("c"): "a character device",
    ord("b"): "a block device",
    ord("s"): "a socket",
}


def parse_file_header(payload: bytes, caps: OutputFiles) -> OutputFile:
    """An output file as its H frame announces it (content follows in D frames)."""
    if len(payload) < _FILE_HEADER.size:
        raise SandboxFailure("supervisor sent a short file header")
    status_code, kind, size = _FILE_HEADER.unpack_from(payload)
    path = payload[_FILE_HEADER.size :].decode(errors="replace")
    status = _FILE_STATUS.get(status_code)
    if status is None:
        raise SandboxFailure(f"supervisor sent an unknown file status {status_code}")
    reason = {
        FileStatus.OK: "",
        FileStatus.TRUNCATED: f"larger than the cap ({caps.file_cap} bytes per file, "
        f"{caps.total_cap} in all)",
        FileStatus.NOT_REGULAR: f"not a regular file: {_FILE_KIND.get(kind, 'unknown type')}",
        FileStatus.MISSING: "no such file",
    }[status]
    return OutputFile(path, status, size=size, reason=reason)


class FrameDecoder:
    """Turns the supervisor's byte stream, in arbitrary pieces, into frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= _FRAME_HEADER.size:
            kind, length = _FRAME_HEADER.unpack_from(self._buffer)
            if length > MAX_FRAME_PAYLOAD:
                raise SandboxFailure(f"supervisor sent an oversized frame ({length} bytes)")
            end = _FRAME_HEADER.size + length
            if len(self._buffer) < end:
                break
            try:
                frame_type = FrameType(kind)
            except ValueError:
                raise SandboxFailure(f"supervisor sent an unknown frame type {kind}") from None
            frames.append(Frame(frame_type, bytes(self._buffer[_FRAME_HEADER.size : end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        return len(self._buffer)


_REPORT_KEYS = {
    "exit_code",
    "signal",
    "wall_us",
    "cpu_us",
    "peak_memory",
    "oom_kills",
    "oom_counted",
    "wall_limit",
    "cpu_limit",
    "stdout_truncated",
    "stderr_truncated",
}


def parse_exit_report(payload: bytes) -> ExitReport:
    values: dict[str, int] = {}
    try:
        for line in payload.decode("ascii").splitlines():
            if not line:
                continue
            key, _, raw = line.partition("=")
            if key in _REPORT_KEYS:
                values[key] = int(raw)
    except (UnicodeDecodeError, ValueError) as error:
        raise SandboxFailure(f"malformed exit report: {error}") from None
    missing = _REPORT_KEYS - values.keys()
    if missing:
        raise SandboxFailure(f"exit report lacks {', '.join(sorted(missing))}")
    return ExitReport(
        exit_code=values["exit_code"],
        signal=values["signal"],
        wall_us=values["wall_us"],
        cpu_us=values["cpu_us"],
        peak_memory=values["peak_memory"],
        oom_kills=values["oom_kills"],
        oom_counted=bool(values["oom_counted"]),
        wall_limit=bool(values["wall_limit"]),
        cpu_limit=bool(values["cpu_limit"]),
        stdout_truncated=bool(values["stdout_truncated"]),
        stderr_truncated=bool(values["stderr_truncated"]),
    )
