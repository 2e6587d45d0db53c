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
from codebeaker.runtimes.packages.requirements import Requirement


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


class Comparison(enum.Enum):
    """How a test case's stdout is compared with what was expected."""

    EXACT = "exact"
    IGNORE_TRAILING_WHITESPACE = "ignore_trailing_whitespace"


@dataclass(frozen=True)
class TestCase:
    """One run of a judged program: its stdin and, if judged, the stdout it must print."""

    __test__ = False  # not a pytest class, whatever its name says

    stdin: bytes = b""
    expected_stdout: bytes | None = None
    comparison: Comparison = Comparison.EXACT


@dataclass(frozen=True)
class OutputFiles:
    """Which files to return after a run, and how many bytes of them at most."""

    patterns: tuple[str, ...] = ()
    file_cap: int = 0  # bytes per file
    total_cap: int = 0  # bytes over all files of one run


NO_OUTPUT_FILES = OutputFiles()


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
    # Limits of the compile stage; memory and processes are always `limits`'.
    compile_limits: Limits | None = None
    output_files: OutputFiles = NO_OUTPUT_FILES
    test_cases: tuple[TestCase, ...] = ()
    # Request-time packages, allowed and merged with the allow-list's ranges.
    packages: tuple[Requirement, ...] = ()

    def argv(self) -> tuple[str, ...]:
        return self.language.command(self.entrypoint, self.args)

    def compile_argv(self) -> tuple[str, ...]:
        """The compiler's argv, or () for an interpreted language."""
        if not self.language.compiled:
            return ()
        return self.language.compile_command(self.entrypoint, (f.path for f in self.files))


class Verdict(enum.Enum):
    OK = "ok"
    RUNTIME_ERROR = "runtime_error"
    SIGNALED = "signaled"
    TIME_LIMIT_EXCEEDED = "time_limit_exceeded"
    MEMORY_LIMIT_EXCEEDED = "memory_limit_exceeded"
    OUTPUT_LIMIT_EXCEEDED = "output_limit_exceeded"
    COMPILE_ERROR = "compile_error"
    ACCEPTED = "accepted"
    WRONG_ANSWER = "wrong_answer"


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


class StageKind(enum.Enum):
    COMPILE = "compile"
    RUN = "run"


@dataclass(frozen=True)
class Stage:
    """A part of an execution: the compile, or a run (`test_case` is 1-based, 0 if none)."""

    kind: StageKind
    test_case: int = 0


COMPILE_STAGE = Stage(StageKind.COMPILE)
RUN_STAGE = Stage(StageKind.RUN)


class FileStatus(enum.Enum):
    OK = "ok"
    MISSING = "missing"
    NOT_REGULAR = "not_regular"
    TRUNCATED = "truncated"


@dataclass(frozen=True)
class OutputFile:
    """One file returned after a run, or why it is not (never followed if not regular)."""

    path: str
    status: FileStatus
    content: bytes = b""
    size: int = 0
    reason: str = ""


@dataclass(frozen=True)
class StageResult:
    stage: Stage
    outcome: Outcome
    files: tuple[OutputFile, ...] = ()


@dataclass(frozen=True)
class Started:
    """The first stage is running in its sandbox."""


@dataclass(frozen=True)
class Output:
    stream: Stream
    data: bytes
    stage: Stage = RUN_STAGE


@dataclass(frozen=True)
class StageFinished:
    """The compile or one test case ended (a plain run ends with Finished alone)."""

    result: StageResult


@dataclass(frozen=True)
class Finished:
    """The whole execution's result: `outcome` sums it up (see runtimes/judging.py)."""

    outcome: Outcome
    compile: StageResult | None = None
    files: tuple[OutputFile, ...] = ()
    test_cases: tuple[StageResult, ...] = ()
    test_cases_passed: int = 0


Event = Started | Output | StageFinished | Finished
