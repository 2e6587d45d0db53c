"""`codebeaker run FILE`: run a local file in a CodeBeaker sandbox, as if locally.

The program's stdout and stderr are passed through live as raw bytes, and its
exit code becomes ours, so `codebeaker run` can stand in for `python3 main.py`
in scripts; verdicts a local run cannot have (limits, signals, compile errors)
get one line on stderr and a distinct exit code (see `_cli_support`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import BinaryIO

from codebeaker.client._cli_support import (
    EXIT_COMPILE_ERROR,
    EXIT_LIMIT,
    EXIT_SIGNAL_BASE,
    EXIT_SOFTWARE,
    EXIT_TIMEOUT,
    CliError,
    human_bytes,
    parse_env,
    parse_seconds,
    parse_size,
    say,
)
from codebeaker.client.sync import Client, ExecutionStream
from codebeaker.client.types import (
    ExecutionResult,
    ExecutionStatus,
    Finished,
    Limits,
    Output,
    OutputStream,
    Runtime,
    Started,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the program's source file")
    parser.add_argument(
        "program_args",
        nargs="*",
        metavar="ARG",
        help="arguments for the program (put them after --)",
    )
    parser.add_argument(
        "-l",
        "--language",
        help="language id or alias (default: inferred from FILE's extension)",
    )
    parser.add_argument("--language-version", metavar="VERSION", help="language version")
    parser.add_argument(
        "--stdin",
        metavar="FILE",
        help="feed FILE ('-' for our own stdin) to the program (default: nothing)",
    )
    parser.add_argument(
        "--arg", action="append", default=[], metavar="ARG", help="a program argument"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        type=parse_env,
        metavar="KEY=VALUE",
        help="an environment variable of the program",
    )
    limits = parser.add_argument_group("limits (default: the server's)")
    limits.add_argument("--wall-time", type=parse_seconds, metavar="S", help="wall-clock time")
    limits.add_argument("--cpu-time", type=parse_seconds, metavar="S", help="CPU time")
    limits.add_argument("--memory", type=parse_size, metavar="BYTES", help="memory, e.g. 256M")
    limits.add_argument("--max-processes", type=int, metavar="N", help="processes and threads")
    limits.add_argument(
        "--max-output", type=parse_size, metavar="BYTES", help="cap on each of stdout and stderr"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="report the execution id, times and memory"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path = Path(args.file)
    source = _read(path, "program")
    stdin = _read_stdin(args.stdin)
    try:
        limits = Limits(
            wall_time=args.wall_time,
            cpu_time=args.cpu_time,
            memory_bytes=args.memory,
            max_processes=args.max_processes,
            max_output_bytes=args.max_output,
        )
    except ValueError as error:
        raise CliError(str(error)) from error
    with Client(args.address, timeout=args.timeout) as client:
        language = args.language or infer_language(client.runtimes(), path)
        stream = client.stream(
            language,
            source,
            stdin=stdin,
            args=[*args.arg, *args.program_args],
            env=dict(args.env),
            limits=limits,
            version=args.language_version,
        )
        # Leaving this block early (Ctrl-C, a closed pipe) cancels the RPC.
        with stream:
            result = _relay(stream, verbose=args.verbose)
    return outcome(result, verbose=args.verbose)


def infer_language(runtimes: list[Runtime], path: Path) -> str:
    """The one language whose default file name has FILE's extension."""
    suffix = path.suffix
    matches = sorted(
        {r.language for r in runtimes if suffix and Path(r.file_name).suffix == suffix}
    )
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise CliError(f"{suffix} files could be {', '.join(matches)}; pass -l/--language")
    known = ", ".join(
        sorted({f"{r.language} ({Path(r.file_name).suffix or r.file_name})" for r in runtimes})
    )
    raise CliError(
        f"cannot tell the language of {path} from its extension "
        f"(known: {known or 'none'}); pass -l/--language"
    )


def outcome(result: ExecutionResult, *, verbose: bool) -> int:
    """Our exit code for a verdict; explains verdicts a local run cannot have."""
    if verbose:
        say(
            f"{result.status.value} exit={result.exit_code} wall={result.wall_time:.3f}s "
            f"cpu={result.cpu_time:.3f}s peak={human_bytes(result.peak_memory_bytes)} "
            f"id={result.execution_id}"
        )
    status = result.status
    if status is ExecutionStatus.OK:
        return 0
    if status is ExecutionStatus.RUNTIME_ERROR:
        code = result.exit_code % 256
        return code if code else 1
    if status is ExecutionStatus.SIGNALED:
        exit_code = min(EXIT_SIGNAL_BASE + result.signal, 255)
        explanation = f"killed by signal {result.signal}{_signal_name(result.signal)}"
    elif status is ExecutionStatus.TIME_LIMIT_EXCEEDED:
        exit_code = EXIT_TIMEOUT
        explanation = (
            f"time limit exceeded (wall {result.wall_time:.2f}s, cpu {result.cpu_time:.2f}s)"
        )
    elif status is ExecutionStatus.MEMORY_LIMIT_EXCEEDED:
        exit_code = EXIT_LIMIT
        explanation = f"memory limit exceeded (peak {human_bytes(result.peak_memory_bytes)})"
    elif status is ExecutionStatus.OUTPUT_LIMIT_EXCEEDED:
        exit_code = EXIT_LIMIT
        cut = [
            name
            for name, truncated in (
                ("stdout", result.stdout_truncated),
                ("stderr", result.stderr_truncated),
            )
            if truncated
        ]
        explanation = "output limit exceeded" + (f" ({' and '.join(cut)} cut)" if cut else "")
    elif status is ExecutionStatus.COMPILE_ERROR:
        exit_code = EXIT_COMPILE_ERROR
        explanation = "compilation failed"
    else:
        exit_code = EXIT_LIMIT
        explanation = "the server gave no verdict"
    say(explanation + (f": {result.message}" if result.message else ""))
    return exit_code


def _relay(stream: ExecutionStream, *, verbose: bool) -> ExecutionResult:
    """Copy the program's output to ours as it arrives; return the verdict."""
    sinks = {OutputStream.STDOUT: sys.stdout.buffer, OutputStream.STDERR: sys.stderr.buffer}
    streamed: set[OutputStream] = set()
    result: ExecutionResult | None = None
    for event in stream:
        if isinstance(event, Output):
            _write(sinks[event.stream], event.data)
            streamed.add(event.stream)
        elif isinstance(event, Started):
            if verbose:
                say(f"execution {event.execution_id}: {event.language} {event.version}".rstrip())
        elif isinstance(event, Finished):
            result = event.result
    if result is None:  # the stream was cancelled under us
        raise CliError("the execution ended without a verdict", EXIT_SOFTWARE)
    # A server may return some output (e.g. a compiler's) only in the result.
    for kind, data in ((OutputStream.STDOUT, result.stdout), (OutputStream.STDERR, result.stderr)):
        if data and kind not in streamed:
            _write(sinks[kind], data)
    return result


def _write(sink: BinaryIO, data: bytes) -> None:
    sink.write(data)
    sink.flush()


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from error


def _read_stdin(name: str | None) -> bytes:
    if name is None:
        return b""
    if name == "-":
        return sys.stdin.buffer.read()
    return _read(Path(name), "stdin file")


def _signal_name(number: int) -> str:
    try:
        return f" ({signal.Signals(number).name})"
    except ValueError:
        return ""
