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
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, TypedDict


class ExecutionStatus(enum.StrEnum):
    """The verdict about what the program did (`codebeaker.v1.ExecutionStatus`).

    ACCEPTED and WRONG_ANSWER are verdicts of judged test cases (a case with
    an expected stdout whose run exited 0), and of a whole execution with test
    cases: ACCEPTED when every case passed.
    """

    UNSPECIFIED = "UNSPECIFIED"
    OK = "OK"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    SIGNALED = "SIGNALED"
    TIME_LIMIT_EXCEEDED = "TIME_LIMIT_EXCEEDED"
    MEMORY_LIMIT_EXCEEDED = "MEMORY_LIMIT_EXCEEDED"
    OUTPUT_LIMIT_EXCEEDED = "OUTPUT_LIMIT_EXCEEDED"
    COMPILE_ERROR = "COMPILE_ERROR"
    ACCEPTED = "ACCEPTED"
    WRONG_ANSWER = "WRONG_ANSWER"

    @property
    def passed(self) -> bool:
        """OK or ACCEPTED: the program exited 0 and, if judged, its output matched."""
        return self in _PASSED


_PASSED = frozenset({ExecutionStatus.OK, ExecutionStatus.ACCEPTED})


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


class Stage(enum.StrEnum):
    """The part of an execution output or a result belongs to."""

    COMPILE = "compile"
    """The compiler of a compiled language."""
    RUN = "run"
    """The program itself (once, or once per test case)."""


class Comparison(enum.StrEnum):
    """How a test case's stdout is compared with its expectation."""

    EXACT = "exact"
    """Byte for byte."""
    IGNORE_TRAILING_WHITESPACE = "ignore_trailing_whitespace"
    """Trailing whitespace of every line and trailing empty lines are ignored."""


class OutputFileStatus(enum.StrEnum):
    """What was found at a requested output path (`codebeaker.v1.OutputFileStatus`)."""

    UNSPECIFIED = "UNSPECIFIED"
    OK = "OK"
    """A regular file, returned whole."""
    MISSING = "MISSING"
    """Nothing matched the path or pattern."""
    NOT_REGULAR = "NOT_REGULAR"
    """A symlink, directory, FIFO, device or socket: never followed or read."""
    TRUNCATED = "TRUNCATED"
    """A regular file cut at the server's cap: `content` holds its start."""


@dataclass(frozen=True)
class Limits:
    """Resource limits of one execution; `None` means the server's default.

    Times are float seconds. A value above the server's maximum is rejected by
    the server with `InvalidArgumentError`; negative values are rejected here.
    As `compile_limits`, only `wall_time`, `cpu_time` and `max_output_bytes`
    may be set: the compile shares the run's memory and process limits.
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
class TestCase:
    """One run of the program in a judged execution.

    `stdin` (text is sent as UTF-8) feeds this run; `expected_stdout`, when
    set, is what it must print to be ACCEPTED (else WRONG_ANSWER); when None
    the run is not judged and a clean exit is OK.
    """

    __test__: ClassVar[bool] = False  # not a pytest test class, despite its name

    stdin: bytes | str = b""
    expected_stdout: bytes | str | None = None
    comparison: Comparison = Comparison.EXACT


@dataclass(frozen=True)
class OutputFile:
    """A file named by `output_files`, as found after the run."""

    path: str
    """Relative to the working directory (the pattern itself when MISSING)."""
    status: OutputFileStatus
    content: bytes = b""
    size: int = 0
    """The file's size in the sandbox (regular files); more than `content` when TRUNCATED."""
    reason: str = ""
    """Why the file is not returned in full, for people."""

    @property
    def ok(self) -> bool:
        """True when `content` is the whole regular file."""
        return self.status is OutputFileStatus.OK


@dataclass(frozen=True)
class StageResult:
    """The outcome of one stage: the compile, or one test case.

    In a streamed execution `stdout`/`stderr` are empty: the output already
    arrived as `Output` events of this stage.
    """

    stage: Stage
    status: ExecutionStatus
    test_case: int = 0
    """1-based index of the test case; 0 for the compile."""
    exit_code: int = 0
    signal: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    wall_time: float = 0.0
    cpu_time: float = 0.0
    peak_memory_bytes: int = 0
    message: str = ""
    limit_exceeded: Limit | None = None
    files: tuple[OutputFile, ...] = ()
    """`output_files` as found after this test case."""

    @property
    def ok(self) -> bool:
        """True when the stage passed: exited 0 and, if judged, matched (OK or ACCEPTED)."""
        return self.status.passed


@dataclass(frozen=True)
class ExecutionResult:
    """The outcome of one execution.

    In a streamed execution `stdout`/`stderr` may be empty: the output already
    arrived as `Output` events. With test cases, the top-level fields sum the
    cases up: `status` is ACCEPTED (OK when nothing was judged) if every case
    passed, else the status of the first case that did not; times are the
    cases' sums, peak memory their maximum.
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
    compile: StageResult | None = None
    """The compile stage of a compiled language; None for interpreted ones."""
    files: tuple[OutputFile, ...] = ()
    """`output_files` as found after the run (without test cases: see each case's)."""
    test_cases: tuple[StageResult, ...] = ()
    """One result per test case, in order."""
    test_cases_passed: int = 0

    @property
    def ok(self) -> bool:
        """True when the program ran and exited 0 and, if judged, every case passed.

        That is, the status is OK or ACCEPTED; WRONG_ANSWER is not ok.
        """
        return self.status.passed


@dataclass(frozen=True)
class Started:
    """First event of a stream: the program has a sandbox and is starting."""

    execution_id: str
    language: str
    version: str


@dataclass(frozen=True)
class Output:
    """A piece of output, bytes exactly as written.

    `stage` says whether the compiler or the program wrote it; `test_case` is
    the 1-based case it belongs to, 0 outside test cases.
    """

    stream: OutputStream
    data: bytes
    stage: Stage = Stage.RUN
    test_case: int = 0


@dataclass(frozen=True)
class StageFinished:
    """The compile or one test case ended (sent before `Finished`)."""

    result: StageResult


@dataclass(frozen=True)
class Finished:
    """Last event of a stream: the verdict."""

    result: ExecutionResult


StreamEvent = Started | Output | StageFinished | Finished
"""One event of `Client.stream` / `AsyncClient.stream`."""


@dataclass(frozen=True)
class Package:
    """One package baked into a runtime's image, e.g. `Package("numpy", "1.24.2")`."""

    name: str
    version: str


@dataclass(frozen=True)
class Runtime:
    """One version of a language the server can run, with the packages its image
    carries (sorted by name; `package_versions` maps each name to its version). A
    language with several versions is listed once per version, the default first."""

    language: str
    version: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
    file_name: str = ""
    compiled: bool = False
    packages: tuple[Package, ...] = field(default_factory=tuple)
    # What a request may ask for (`packages=`): name -> the versions allowed ("" for any).
    installable: Mapping[str, str] = field(default_factory=dict)
    # Shorter names `version=` accepts for this version (e.g. "3.11"), longest first.
    version_aliases: tuple[str, ...] = field(default_factory=tuple)
    # Whether it is what a request without `version=` gets.
    is_default: bool = False

    @property
    def package_versions(self) -> dict[str, str]:
        """Package name -> version, e.g. `runtime.package_versions["numpy"]`."""
        return {package.name: package.version for package in self.packages}


Source = str | bytes
"""A single-file program: text (sent as UTF-8) or bytes."""

Files = Sequence[File] | Mapping[str, bytes | str]
"""Files of a multi-file program: `File`s, or a mapping of path to content."""

Packages = Iterable[str] | Mapping[str, str]
"""Packages to install from the server's allow-list: names (the newest allowed), or
name -> version ("1.2.3", or a range: ">=1.2, <2")."""


class ExecutionOptions(TypedDict, total=False):
    """The keyword arguments of `execute` and `stream` (both clients) that describe
    the program; any left out take the server's default.
    """

    files: Files | None
    """A multi-file program (instead of `source`)."""
    entrypoint: str | None
    """Path (among `files`) of the file to run; default: the first."""
    stdin: bytes | str
    """Fed to the program (text as UTF-8); must be empty with `test_cases`."""
    args: Iterable[str]
    env: Mapping[str, str] | None
    limits: Limits | None
    compile_limits: Limits | None
    """Time and output limits of a compiled language's compile stage."""
    output_files: Iterable[str]
    """Paths or globs (`*` and `?` do not cross `/`) of files to return after the run."""
    test_cases: Iterable[TestCase]
    """Compile once, then run once per case; see `ExecutionResult.test_cases`."""
    version: str | None
    request_id: str | None
    packages: Packages
    """Installed for this run from the server's allow-list (see `Packages`)."""


class OperationState(enum.StrEnum):
    """Where a submitted execution is (`codebeaker.v1.ExecutionState`).

    QUEUED, then RUNNING, then one of the final three; QUEUED may go straight to
    CANCELLED. A job whose server died while running it stays RUNNING until its
    lease runs out and a server claims it again (`attempts` counts the claims);
    one a server hands back when it stops is QUEUED again.
    """

    UNSPECIFIED = "UNSPECIFIED"
    """Not set by the server, or a state added after this SDK was built."""
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    """The program ran: its verdict (any, also a failing one) is the result."""
    FAILED = "FAILED"
    """The service could not run it; the operation's error says why."""
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        """True for the final states: nothing about the operation changes any more."""
        return self in _FINAL_STATES


_FINAL_STATES = frozenset(
    {OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED}
)


@dataclass(frozen=True)
class OperationMetadata:
    """What the server says about a submitted execution besides its outcome.

    Times are timezone-aware UTC datetimes; None until the event happened.
    """

    state: OperationState
    create_time: datetime | None = None
    """When it was submitted."""
    start_time: datetime | None = None
    """When its latest attempt started running."""
    end_time: datetime | None = None
    attempts: int = 0
    """How many times a server has started it (more than 1: a server died running it)."""
    execution_id: str = ""
    """The latest attempt's execution id (as `ExecutionResult.execution_id`), once it started."""
    request_id: str = ""
    """The idempotency key it was submitted with ("" for none)."""
    language: str = ""
    cancel_requested: bool = False
    """A cancel was asked for while it ran: it ends CANCELLED shortly."""
