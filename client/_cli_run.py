"""`codebeaker run FILE...`: run local files in a CodeBeaker sandbox, as if locally.

The program's stdout and stderr are passed through live as raw bytes, and its
exit code becomes ours, so `codebeaker run` can stand in for `python3 main.py`
in scripts; verdicts a local run cannot have (limits, signals, compile errors)
get one line on stderr and a distinct exit code (see `_cli_support`). With
`--case`, the program is compiled once and judged against each case instead;
with `--output`, files it leaves behind are copied back. Showing and exit codes
live in `_cli_report`, local file handling in `_cli_files`.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from codebeaker.client._cli_connect import open_client
from codebeaker.client._cli_files import (
    Program,
    parse_case,
    read_cases,
    read_program,
    read_stdin,
    save_output_files,
)
from codebeaker.client._cli_report import judged_outcome, outcome, relay
from codebeaker.client._cli_support import (
    EXIT_CANT_CREATE,
    CliError,
    add_package_flag,
    parse_env,
    parse_seconds,
    parse_size,
)
from codebeaker.client.sync import Client
from codebeaker.client.types import (
    Comparison,
    ExecutionOptions,
    ExecutionResult,
    Limits,
    Runtime,
)

# Extensions the servers' default file names (main.cpp, Main.java, ...) do not
# cover, or cover only for some; used only for languages the server has.
EXTENSIONS = {
    ".py": "python",
    ".js": "javascript",
    ".c": "c",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".cxx": "cpp",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".cs": "csharp",
    ".ts": "typescript",
    ".rb": "ruby",
    ".php": "php",
    ".sh": "bash",
}
COMPARISONS = {
    "exact": Comparison.EXACT,
    "trailing-whitespace": Comparison.IGNORE_TRAILING_WHITESPACE,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`run`'s options: the program's, then how its result is shown."""
    add_program_arguments(parser)
    add_display_arguments(parser)
    parser.set_defaults(handler=run)


def add_program_arguments(parser: argparse.ArgumentParser) -> None:
    """What describes the program (FILE..., language, stdin, limits, cases, outputs);
    `run` and `submit` share them."""
    parser.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="the program's source files; the first is the entrypoint "
        "(program arguments go after --)",
    )
    parser.add_argument(
        "-l",
        "--language",
        help="language id or alias (default: inferred from the first FILE's extension)",
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
    add_package_flag(
        parser, "a package to install from the server's allow-list (repeatable), e.g. tabulate"
    )
    limits = parser.add_argument_group("limits (default: the server's)")
    limits.add_argument("--wall-time", type=parse_seconds, metavar="S", help="wall-clock time")
    limits.add_argument("--cpu-time", type=parse_seconds, metavar="S", help="CPU time")
    limits.add_argument("--memory", type=parse_size, metavar="BYTES", help="memory, e.g. 256M")
    limits.add_argument("--max-processes", type=int, metavar="N", help="processes and threads")
    limits.add_argument(
        "--max-output", type=parse_size, metavar="BYTES", help="cap on each of stdout and stderr"
    )
    limits.add_argument(
        "--compile-time",
        type=parse_seconds,
        metavar="S",
        help="wall-clock and CPU time of the compile (compiled languages)",
    )
    judging = parser.add_argument_group("test cases (compile once, run once per case)")
    judging.add_argument(
        "--case",
        dest="cases",
        action="append",
        default=[],
        type=parse_case,
        metavar="IN[:OUT]",
        help="a test case: stdin from file IN, expected stdout from file OUT "
        "(without OUT the case is run, not judged); repeat for more",
    )
    judging.add_argument(
        "--compare",
        choices=sorted(COMPARISONS),
        default="exact",
        help="how stdout is compared with OUT (default: %(default)s)",
    )
    outputs = parser.add_argument_group("output files")
    outputs.add_argument(
        "--output",
        dest="outputs",
        action="append",
        default=[],
        metavar="PATH",
        help="copy this file (a glob: * and ? do not cross /) back from the sandbox; "
        "repeat for more",
    )
    parser.set_defaults(program_args=[])


def add_display_arguments(parser: argparse.ArgumentParser) -> None:
    """How a result is shown and where its files go; `run` and `wait` share them."""
    shown = parser.add_argument_group("showing the result")
    shown.add_argument(
        "--show-output",
        action="store_true",
        help="with test cases: pass each case's stdout and stderr through "
        "(default: one line per case)",
    )
    shown.add_argument(
        "--output-dir",
        default=".",
        metavar="DIR",
        help="where --output files are written, never outside it (default: the current "
        "directory; with --case, DIR/case-N/)",
    )
    shown.add_argument(
        "-v", "--verbose", action="store_true", help="report the execution id, times and memory"
    )


@dataclass(frozen=True)
class ProgramRequest:
    """The program and its options as read from the command line and local files."""

    program: Program
    options: ExecutionOptions

    @property
    def cases(self) -> int:
        return len(list(self.options.get("test_cases", ())))

    def language(self, args: argparse.Namespace, client: Client) -> str:
        """`--language`, else what the first FILE's extension says (asks the server)."""
        language: str = args.language or infer_language(client.runtimes(), self.program.first)
        return language


def read_request(args: argparse.Namespace) -> ProgramRequest:
    """Every local file read and every option checked before the server is asked."""
    program = read_program(args.files)
    cases = read_cases(args.cases, COMPARISONS[args.compare])
    if cases and args.stdin is not None:
        raise CliError("--stdin cannot be used with --case: each case has its own stdin")
    stdin = read_stdin(args.stdin)
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
    compile_limits = (
        Limits(wall_time=args.compile_time, cpu_time=args.compile_time)
        if args.compile_time is not None
        else None
    )
    options = ExecutionOptions(
        files=program.files,
        entrypoint=program.entrypoint,
        stdin=stdin,
        args=[*args.arg, *args.program_args],
        env=dict(args.env),
        limits=limits,
        compile_limits=compile_limits,
        output_files=list(args.outputs),
        test_cases=cases,
        version=args.language_version,
        packages=dict(args.packages),
    )
    return ProgramRequest(program, options)


def run(args: argparse.Namespace) -> int:
    request = read_request(args)
    with open_client(args) as client:
        stream = client.stream(
            request.language(args, client), request.program.source, **request.options
        )
        # Leaving this block early (Ctrl-C, a closed pipe) cancels the RPC.
        with stream:
            result = relay(stream, verbose=args.verbose, show_case_output=args.show_output)
    return conclude(result, request.cases, args)


def conclude(result: ExecutionResult, cases: int, args: argparse.Namespace) -> int:
    """After the output was shown: files saved under --output-dir, the exit code decided."""
    saved = save_output_files(result, Path(args.output_dir), verbose=args.verbose)
    if cases:
        code = judged_outcome(result, cases, verbose=args.verbose)
    else:
        code = outcome(result, verbose=args.verbose)
    return EXIT_CANT_CREATE if code == 0 and not saved else code


def infer_language(runtimes: list[Runtime], path: Path) -> str:
    """The one language whose default file name has FILE's extension.

    The server's file names decide; `EXTENSIONS` only fills in extensions
    they do not name (.cc for C++, ...), for languages the server has.
    """
    suffix = path.suffix
    matches = sorted(
        {r.language for r in runtimes if suffix and Path(r.file_name).suffix == suffix}
    )
    if not matches and EXTENSIONS.get(suffix.lower()) in {r.language for r in runtimes}:
        matches = [EXTENSIONS[suffix.lower()]]
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
