"""The `codebeaker` command's client half: `run`, `runtimes`, the queue's
`submit`, `wait` and `operations` (in `_cli_operations`), and `session ...`
(in `_cli_session` and `_cli_session_io`).

The client subcommands use only the SDK. A server install's console script
(`codebeaker.server.cli`) calls `main` with `server_commands`, which adds
`serve` and the backend's commands; `python -m codebeaker.client` is the
client alone. Every subcommand sets `handler=<callable(args) -> int>`;
`main` calls it and turns failures into one line on stderr and an exit code
(table in `_cli_support`), never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TypeAlias

from codebeaker.client import _cli_operations, _cli_run, _cli_session
from codebeaker.client._cli_connect import connection_parser, open_client
from codebeaker.client._cli_support import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    PROG,
    CliError,
    explain_error,
    say,
)
from codebeaker.client.errors import CodeBeakerError
from codebeaker.client.types import Runtime

Handler: TypeAlias = Callable[[argparse.Namespace], int]
SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
AddCommands: TypeAlias = Callable[[SubParsers], None]

_CLIENT_COMMANDS = frozenset({"run", "runtimes", "submit", "wait", "operations", "session"})
# Commands that take FILE... and program arguments after `--`, as `run` does.
_PROGRAM_COMMANDS = frozenset({"run", "submit"})
# Commands whose arguments after `--` are a program's (`session exec NAME -- CMD ...`).
_ARGV_COMMANDS = _PROGRAM_COMMANDS | {"session"}


def main(argv: Sequence[str] | None = None, server_commands: AddCommands | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(arguments)
    program_args: list[str] = []
    if command in _ARGV_COMMANDS and "--" in arguments[arguments.index(command) :]:
        # Everything after `--` is the program's, verbatim; argparse would
        # reject it once an option follows FILE.
        split = arguments.index("--", arguments.index(command))
        arguments, program_args = arguments[:split], arguments[split + 1 :]
    # Only when needed: the server's commands import the server (~0.15 s).
    wanted = server_commands if command not in _CLIENT_COMMANDS else None
    parser = build_parser(server_commands=wanted)
    args, extra = parser.parse_known_args(arguments)
    if command in _PROGRAM_COMMANDS and not any(a.startswith("-") for a in extra):
        # argparse takes FILE... from one run of positionals only; those after
        # an option (`run main.c -l c helper.h`) are files too.
        args.files = [*args.files, *extra]
        extra = []
    if program_args and not hasattr(args, "program_args"):
        extra = [*extra, "--", *program_args]  # this command takes no program
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if program_args:
        args.program_args = [*args.program_args, *program_args]
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        say("choose a command")
        return EXIT_USAGE
    try:
        return handler(args)
    except CliError as error:
        say(error.message)
        return error.exit_code
    except CodeBeakerError as error:
        failure = explain_error(error, getattr(args, "address", None))
        say(failure.message)
        return failure.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our stdout left; don't fail again flushing it at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def build_parser(*, server_commands: AddCommands | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Run untrusted code in isolated, single-use containers.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {_version()}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")

    connection = connection_parser()

    run = subparsers.add_parser(
        "run",
        parents=[connection],
        help="run source files in a sandbox",
        usage=f"{PROG} run [options] FILE [FILE ...] [-- ARG ...]",
        description="Run FILE (with any further FILEs beside it) in a fresh sandbox, "
        "streaming its output; exit with its code. With --case, judge it against test "
        "cases instead.",
        epilog="Exit codes: the program's own, else 2 usage/invalid request, 69 unavailable, "
        "70 service error, 73 an --output file not written, 75 server busy, 124 time limit "
        "or deadline, 125 memory/output limit, 126 compile error, 128+N killed by signal N, "
        "130 interrupted. With --case: 0 all cases passed, 1 some did not.",
    )
    _cli_run.add_arguments(run)

    runtimes = subparsers.add_parser(
        "runtimes",
        parents=[connection],
        help="list the languages the server can run",
        description="List the languages, versions and aliases the server can run, and how "
        "many packages each one's image carries.",
    )
    runtimes.add_argument(
        "--packages",
        action="store_true",
        help="list the packages instead: language, package and version, one a line "
        "(baked into the image; then those requests may ask for, with the versions allowed)",
    )
    runtimes.set_defaults(handler=list_runtimes)

    wait_connection = connection_parser(
        timeout_help="how long to wait in all (default: until it is done); past it, "
        "exit 124 while the operation goes on"
    )
    _cli_operations.add_commands(subparsers, connection, wait_connection)
    _cli_session.add_commands(subparsers, connection)

    if server_commands is not None:
        server_commands(subparsers)
    return parser


def list_runtimes(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        runtimes = client.runtimes()  # by language, its default version first
    if args.packages:
        _print_table(
            [("LANGUAGE", "PACKAGE", "VERSION")]
            + [(r.language, p.name, p.version) for r in runtimes for p in r.packages]
            + [
                (r.language, name, f"installable {versions or 'any version'}".strip())
                for r in runtimes
                for name, versions in sorted(r.installable.items())
            ]
        )
        return 0
    rows = [("LANGUAGE", "VERSION", "VERSION ALIASES", "ALIASES", "FILE", "COMPILED", "PACKAGES")]
    rows += [
        (
            r.language,
            r.version + (" (default)" if r.is_default and _versions(runtimes, r) > 1 else ""),
            ", ".join(r.version_aliases),
            ", ".join(r.aliases),
            r.file_name,
            "yes" if r.compiled else "no",
            str(len(r.packages)) if r.packages else "",
        )
        for r in runtimes
    ]
    _print_table(rows)
    return 0


def _versions(runtimes: Sequence[Runtime], runtime: Runtime) -> int:
    return sum(1 for r in runtimes if r.language == runtime.language)


def _print_table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip())


def _command_of(arguments: Sequence[str]) -> str | None:
    """The subcommand's name (no top-level option takes a value).

    Knowing it early lets the client commands skip importing the server.
    """
    return next((a for a in arguments if not a.startswith("-")), None)


def _version() -> str:
    try:
        return metadata.version("codebeaker")
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
