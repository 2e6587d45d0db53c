"""What the `codebeaker` command's client subcommands share: exit codes, the
translation of SDK errors into one-line messages, and argument value parsers.

Kept apart from the parser and the `run` logic so the exit-code table lives in
exactly one place.

Exit codes of `codebeaker run` / `runtimes` (and `wait`, `session exec` and
`session logs`, which exit as `run`; `submit`, `operations` and the other
`session` commands exit 0 or with the codes of a failed call):

    0-255  the program's own exit code (verdict OK or RUNTIME_ERROR)
    0      with --case: every test case passed (the program's codes are not passed on)
    1      with --case: at least one test case did not pass (as pytest's failed tests)
    2      usage error, unreadable file, unknown language (INVALID_ARGUMENT)
    66     no such session or operation, or not the caller's (NOT_FOUND; EX_NOINPUT)
    69     the service is unreachable or its engine is down (UNAVAILABLE; EX_UNAVAILABLE)
    70     any other service failure (EX_SOFTWARE), also a resource not in a state that
           allows the request (FAILED_PRECONDITION: not retried, the caller changes it),
           and a waited-for operation that was cancelled (CANCELLED)
    73     an --output file could not be written here, or its path was refused
           (EX_CANTCREAT; only when the run itself exited 0)
    75     the server has no capacity now, or the tenant's quota is used up
           (RESOURCE_EXHAUSTED; EX_TEMPFAIL)
    77     no or unknown credentials, or not allowed (UNAUTHENTICATED, PERMISSION_DENIED;
           EX_NOPERM)
    124    time limit exceeded, or the --timeout deadline passed (as timeout(1)); for
           `wait`, the operation was not done within --timeout (it goes on)
    125    memory or output limit exceeded, or no verdict
    126    compile error (also with --case)
    128+N  the program was killed by signal N (SIGNALED)
    130    interrupted by Ctrl-C (the execution is cancelled)
    141    stdout closed by the reader (the execution is cancelled)
"""

from __future__ import annotations

import argparse
import math
import re
import sys

from codebeaker.client.errors import (
    CodeBeakerError,
    DeadlineExceededError,
    ExecutionCancelledError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    WaitTimeoutError,
)

PROG = "codebeaker"

EXIT_CASES_FAILED = 1
EXIT_USAGE = 2
EXIT_NO_INPUT = 66
EXIT_UNAVAILABLE = 69
EXIT_SOFTWARE = 70
EXIT_CANT_CREATE = 73
EXIT_TEMPFAIL = 75
EXIT_NO_PERMISSION = 77
EXIT_TIMEOUT = 124
EXIT_LIMIT = 125
EXIT_COMPILE_ERROR = 126
EXIT_SIGNAL_BASE = 128
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


class CliError(Exception):
    """A failure the command reports as one line on stderr and an exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def say(message: str) -> None:
    """One diagnostic line on stderr, prefixed like every line of this command."""
    sys.stderr.write(f"{PROG}: {message}\n")
    sys.stderr.flush()


def explain_error(error: CodeBeakerError, address: str | None) -> CliError:
    """The message and exit code for an RPC failure."""
    where = f" at {address}" if address else ""
    if isinstance(error, InvalidArgumentError):
        return CliError(f"invalid request: {error.details}", EXIT_USAGE)
    if isinstance(error, UnavailableError):
        return CliError(f"service unavailable{where}: {error.details}", EXIT_UNAVAILABLE)
    if isinstance(error, ResourceExhaustedError):
        hint = f"; retry in {error.retry_after:g}s" if error.retry_after is not None else ""
        return CliError(f"server busy: {error.details}{hint}", EXIT_TEMPFAIL)
    if isinstance(error, WaitTimeoutError):
        return CliError(f"not done yet: {error.details} (it goes on)", EXIT_TIMEOUT)
    if isinstance(error, DeadlineExceededError):
        return CliError(f"deadline exceeded: {error.details}", EXIT_TIMEOUT)
    if isinstance(error, UnauthenticatedError):
        return CliError(f"not authenticated{where}: {error.details}", EXIT_NO_PERMISSION)
    if isinstance(error, PermissionDeniedError):
        return CliError(f"permission denied: {error.details}", EXIT_NO_PERMISSION)
    if isinstance(error, NotFoundError):
        return CliError(f"not found: {error.details}", EXIT_NO_INPUT)
    if isinstance(error, FailedPreconditionError):
        return CliError(f"not possible now: {error.details}", EXIT_SOFTWARE)
    if isinstance(error, ExecutionCancelledError):
        return CliError(f"cancelled: {error.details}", EXIT_SOFTWARE)
    return CliError(f"{error.code}: {error.details}", EXIT_SOFTWARE)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:ib|i|b)?\s*$", re.IGNORECASE)
_SECONDS = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SECOND_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


def parse_size(text: str) -> int:
    """Bytes from `1048576`, `512K`, `256M`, `1.5G`, `2GiB` (binary multiples)."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (try 256M or 1G)")
    return round(float(match.group(1)) * _SIZE_UNITS[match.group(2).lower()])


def parse_seconds(text: str) -> float:
    """Seconds from `5`, `2.5s`, `500ms` or `1m`."""
    match = _SECONDS.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (try 5, 2.5s or 500ms)")
    seconds = float(match.group(1)) * _SECOND_UNITS[(match.group(2) or "s").lower()]
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"not a duration: {text!r}")
    return seconds


def parse_env(text: str) -> tuple[str, str]:
    """`KEY=VALUE` for one environment variable of the program."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def parse_package(text: str) -> tuple[str, str]:
    """`NAME`, `NAME==1.2.3`, `NAME>=1.2,<2` or npm's `NAME@1.2.3` (`NAME@>=1.2`):
    (name, version)."""
    text = text.strip()
    cut = next((i for i, char in enumerate(text) if char in "=<>"), -1)
    at = text.find("@", 1)  # a scoped npm name starts with @ itself
    if at > 0 and (cut < 0 or at < cut):  # NAME@1.2.3, and NAME@>=1.2 too
        name, version = text[:at], text[at + 1 :]
    elif cut >= 0:
        name, version = text[:cut], text[cut:]
    else:
        name, version = text, ""
    if not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME or NAME==VERSION, got {text!r}")
    return name.strip(), version.strip()


def add_package_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--package",
        dest="packages",
        action="append",
        default=[],
        type=parse_package,
        metavar="NAME[==VERSION]",
        help=help_text,
    )


def human_bytes(amount: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if amount >= size:
            return f"{amount / size:.1f} {unit}"
    return f"{amount} B"
