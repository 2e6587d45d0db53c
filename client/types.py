"""The SDK's own value types: what callers build requests from and get back.

Callers never see protobuf messages: these frozen dataclasses are the public
vocabulary of `codebeaker.client`, converted to and from the wire in one place
(`_convert`). Durations are float seconds everywhere (limits, results,
timeouts), the same unit gRPC deadlines use. Program data is `bytes`: output is
not always UTF-8.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class ExecutionStatus(enum.StrEnum):
    """The verdict about what the program did (`codebeaker.v1.ExecutionStatus`)."""

    UNSPECIFIED = "UNSPECIFIED"
    OK = "OK"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SIGNALED = "SIGNALED"
    TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    OUTPUT_LIMIT_EXCEEDED = "OUTPUT_LIMIT_EXCEEDED"
    COMPILE_ERROR = "COMPILE_ERROR"


class Limit(enum.StrEnum):
    """The limit that ended an execution (`codebeaker.v1.Limit`)."""

    UNSPECIFIED = "UNSPECIFIED"
    WALL_TIME = "WALL_TIME"
    CPU_TIME = "CPU_TIME"
    MEMORY = "MEMORY"
    OUTPUT = "OUTPUT"


class OutputStream(enum.StrEnum):
    """Which standard stream of the program a chunk of output came from."""

    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution; `None` means the server's default.

    Times are float seconds. A value above the server's maximum is rejected by
    the server with `InvalidArgumentError`; negative values are rejected here.
    """

    wall_time: float | None = None
    cpu_time: float | None = None
    memory_bytes: int | None = None
    max_processes: int | None = None
    max_output_bytes: int | None = None

    def __post_init__(self) -> None:
        for name in ("wall_time", "cpu_time"):
            seconds = getattr(self, name)
            if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
                raise ValueError(f"Limits.{name} must be a finite number of seconds >= 0")
        for name in ("memory_bytes", "max_processes", "max_output_bytes"):
            amount = getattr(self, name)
            if amount is not None and amount < 0:
                raise ValueError(f"Limits.{name} must be >= 0")


@dataclass(frozen=True)
class File:
    """One file of a multi-file program; `path` is relative to the workdir."""

    path: str
    content: bytes


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution.

    In a streamed execution `stdout`/`stderr` may be empty: the output already
    arrived as `Output` events.
    """

    status: ExecutionStatus
    exit_code: int = 0
    signal: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_time: float = 0.0
    cpu_time: float = 0.0
    peak_memory_bytes: int = 0
    execution_id: str = ""
    message: str = ""
    # Which limit ended the execution; None when none did.
    limit_exceeded: Limit | None = None

    @property
    def ok(self) -> bool:
        """True when the program ran and exited with code 0."""
        return self.status is ExecutionStatus.OK


@dataclass(frozen=True)
class Started:
    """First event of a stream: the program has a sandbox and is starting."""

    execution_id: str
    language: str
    version: str


@dataclass(frozen=True)
class Output:
    """A piece of the program's output, bytes exactly as written."""

    stream: OutputStream
    data: bytes


@dataclass(frozen=True)
class Finished:
    """Last event of a stream: the verdict."""

    result: ExecutionResult


StreamEvent = Started | Output | Finished
"""One event of `Client.stream` / `AsyncClient.stream`."""


@dataclass(frozen=True)
class Runtime:
    """One language the server can run."""

    language: str
    version: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    file_name: str = ""
    compiled: bool = False
