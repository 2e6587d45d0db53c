"""Domain values of one execution: what to run, under which limits, what came out.

These are plain frozen dataclasses so the server can translate them to and from
protobuf in one place and the sandbox layer never sees grpc.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from codebeaker.runtimes.catalog import LanguageSpec


@dataclass(frozen=True)
class SourceFile:
    path: str
    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Limits:
    """Resolved limits of one execution (no "unset" values left)."""

    wall_time: float  # seconds
    cpu_time: float  # seconds
    memory_bytes: int
    max_processes: int
    max_output_bytes: int  # per stream


@dataclass(frozen=True)
class Job:
    """One validated execution, ready for a sandbox."""

    execution_id: str
    language: LanguageSpec
    files: tuple[SourceFile, ...]
    entrypoint: str
    limits: Limits
    stdin: bytes = b""
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    request_id: str = ""

    def argv(self) -> tuple[str, ...]:
        return self.language.command(self.entrypoint, self.args)


class Verdict(enum.Enum):
    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    SIGNALED = "signaled"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    COMPILE_ERROR = "compile_error"


class LimitKind(enum.Enum):
    """The limit that ended an execution."""

    WALL_TIME = "wall_time"
    CPU_TIME = "cpu_time"
    MEMORY = "memory"
    OUTPUT = "output"


class Stream(enum.Enum):
    STDOUT = "stdout"
    STDERR = "stderr"


@dataclass(frozen=True)
class Outcome:
    """What the program did, as measured from outside it."""

    verdict: Verdict
    exit_code: int
    signal: int
    wall_time: float
    cpu_time: float
    peak_memory_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    message: str = ""
    limit_exceeded: LimitKind | None = None


@dataclass(frozen=True)
class Started:
    """The program is running in its sandbox."""


@dataclass(frozen=True)
class Output:
    stream: Stream
    data: bytes


@dataclass(frozen=True)
class Finished:
    outcome: Outcome


Event = Started | Output | Finished
