"""The server's half of the cb-supervisor wire protocol (see supervisor/PROTOCOL.md).

Pure byte handling, no I/O: encoding the request that carries a program into a
waiting container, and incrementally decoding the frames the supervisor sends
back. The program never writes to the supervisor's stdout directly (the
supervisor frames everything), so nothing it prints can forge a frame.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import SourceFile

MAGIC = b"CBX1"
MAX_FRAME_PAYLOAD = 65536
_FRAME_HEADER = struct.Struct(">BI")


class FrameType(enum.Enum):
    STARTED = ord("S")
    STDOUT = ord("1")
    STDERR = ord("2")
    EXIT = ord("X")
    FATAL = ord("F")


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
    wall_limit: bool
    cpu_limit: bool
    stdout_truncated: bool
    stderr_truncated: bool


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _blob32(data: bytes) -> bytes:
    return _u32(len(data)) + data


def encode_request(
    *,
    files: Iterable[SourceFile],
    argv: Iterable[str],
    env: Mapping[str, str],
    wall_time: float,
    cpu_time: float,
    output_cap: int,
    stdin: bytes,
) -> bytes:
    """The whole request, stdin included, ready to write to the container."""
    file_list = list(files)
    args = [a.encode() for a in argv]
    env_items = [f"{k}={v}".encode() for k, v in env.items()]
    parts = [MAGIC, _u32(len(file_list))]
    for item in file_list:
        parts += [_blob32(item.path.encode()), _u32(item.mode), _u64(len(item.content))]
        parts.append(item.content)
    parts.append(_u32(len(args)))
    parts += [_blob32(a) for a in args]
    parts.append(_u32(len(env_items)))
    parts += [_blob32(e) for e in env_items]
    parts += [
        _u64(math.ceil(wall_time * 1000)),
        _u64(math.ceil(cpu_time * 1000)),
        _u64(output_cap),
        _u64(len(stdin)),
        stdin,
    ]
    return b"".join(parts)


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
        wall_limit=bool(values["wall_limit"]),
        cpu_limit=bool(values["cpu_limit"]),
        stdout_truncated=bool(values["stdout_truncated"]),
        stderr_truncated=bool(values["stderr_truncated"]),
    )
