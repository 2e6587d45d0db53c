"""`codebeaker session exec`, `logs` and `cp`: a session's commands and files, from a terminal.

`exec` attaches the terminal to one command: our stdin goes to it as it is
read (a thread pumps it, so a prompt gets its answer line by line), its stdout
and stderr come back as they are written, and its verdict becomes our exit
code exactly as for `codebeaker run` (`_cli_report.outcome`). The first Ctrl-C
is sent to the command as SIGINT (as a local terminal would); a second one
leaves, stopping it. `logs` follows an Exec that is already running (or
replays one that ended), `cp` copies one file in or out.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

from codebeaker.client._cli_connect import connection_parser, open_client
from codebeaker.client._cli_files import read_file
from codebeaker.client._cli_report import outcome
from codebeaker.client._cli_support import (
    EXIT_CANT_CREATE,
    EXIT_LIMIT,
    EXIT_NO_INPUT,
    EXIT_SOFTWARE,
    PROG,
    CliError,
    human_bytes,
    parse_env,
    say,
)
from codebeaker.client._session_convert import session_name
from codebeaker.client.exec_stream import ExecStream, InteractiveExec
from codebeaker.client.session_types import (
    ExecDisplay,
    ExecEvent,
    ExecFinished,
    ExecOutput,
    ExecResult,
    ExecStarted,
)
from codebeaker.client.sync import Client
from codebeaker.client.types import Limits, OutputFileStatus, OutputStream

# NAME:PATH, NAME being sessions/ID or ID; a local path with a colon starts with ./ or /.
_REMOTE = re.compile(r"^((?:sessions/)?[A-Za-z0-9][A-Za-z0-9_-]*):(.*)$", re.DOTALL)
_CHUNK = 64 * 1024


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    connection: argparse.ArgumentParser,
) -> None:
    exec_connection = connection_parser(
        timeout_help="the command's wall-clock limit: past it, it is stopped and we exit 124 "
        "(default: the session's)"
    )
    run = commands.add_parser(
        "exec",
        parents=[exec_connection],
        help="run a command in a session, attached to this terminal",
        usage=f"{PROG} session exec [options] NAME (-- CMD [ARG ...] | --code CODE)",
        description="Run CMD in session NAME: our stdin goes to it as it is read, its output "
        "comes back as it is written, and we exit with its exit code. The first Ctrl-C is "
        "sent to it as SIGINT; a second one leaves, stopping it. With --detach, print the "
        f"Exec's id and leave it running (follow it with `{PROG} session logs`).",
        epilog="Exit codes: the command's own; else as for run: 124 time limit, 125 output "
        "limit, 128+N killed by signal N; 66 no such session, 70 the session is paused, "
        "130 interrupted.",
    )
    run.add_argument("name", metavar="NAME", help="sessions/ID, or the ID alone")
    run.add_argument("command", nargs="*", metavar="CMD", help="the command and its arguments")
    run.add_argument("--detach", action="store_true", help="start it, print its id, leave")
    run.add_argument(
        "--code",
        metavar="CODE",
        help="run CODE as a cell of the session's interpreter (Python, JavaScript; - reads it "
        "from stdin): its output, then its last value",
    )
    run.add_argument("--cwd", metavar="DIR", help="working directory, relative to the session's")
    run.add_argument(
        "--env",
        action="append",
        default=[],
        type=parse_env,
        metavar="KEY=VALUE",
        help="an environment variable added to the session's",
    )
    run.set_defaults(handler=exec_command, program_args=[])

    logs = commands.add_parser(
        "logs",
        parents=[connection],
        help="follow an Exec's output (replayed, then live)",
        description="Print the output of Exec EXEC_ID of session NAME that the session keeps "
        "(from sequence number --from on), then follow it live until it ends; exit as exec does.",
    )
    logs.add_argument("name", metavar="NAME", help="sessions/ID, or the ID alone")
    logs.add_argument("exec_id", metavar="EXEC_ID", help="as exec --detach or execs print it")
    logs.add_argument(
        "--from",
        dest="from_sequence",
        type=_sequence,
        default=0,
        metavar="N",
        help="replay from event N (default: all that is kept)",
    )
    logs.set_defaults(handler=follow_exec)

    copy = commands.add_parser(
        "cp",
        parents=[connection],
        help="copy a file into or out of a session",
        description="Copy one file: SRC or DST (not both) is NAME:PATH, a file of session "
        "NAME (PATH relative to its working directory). Into a session, SRC may be - (our "
        "stdin) and a PATH ending in / takes SRC's name; out of one, DST may be - (our stdout) "
        "or a directory. A local path with a colon starts with ./ or /.",
        epilog="Exit codes: 0 copied; 66 no such session or file (or not a regular file); "
        "73 cannot write DST; 125 the file was cut at the server's cap (its start written).",
    )
    copy.add_argument("source", metavar="SRC")
    copy.add_argument("target", metavar="DST")
    copy.set_defaults(handler=copy_file)


def exec_command(args: argparse.Namespace) -> int:
    argv = [*args.command, *args.program_args]
    if args.code is not None:
        if argv or args.detach or args.cwd or args.env:
            raise CliError("--code runs a cell: no CMD, --detach, --cwd or --env with it")
        return _run_cell(args)
    if not argv:
        raise CliError("name the command to run: session exec NAME -- CMD [ARG ...]")
    limits = Limits(wall_time=args.timeout) if args.timeout is not None else None
    env = dict(args.env)
    # --timeout bounds the command, not the call: a conversation may take long.
    with open_client(argparse.Namespace(**{**vars(args), "timeout": None})) as client:
        session = client.get_session(name_of(args.name))
        if args.detach:
            stream = session.exec_stream(argv, env=env, cwd=args.cwd, limits=limits, detached=True)
            return _started(stream)
        shell = session.interactive(argv, env=env, cwd=args.cwd, limits=limits)
        with shell, _interrupts_to(shell):
            pump = threading.Thread(target=_pump_stdin, args=(shell,), daemon=True)
            pump.start()
            result = relay(shell)
    return _exit_code(result)


def _run_cell(args: argparse.Namespace) -> int:
    code = sys.stdin.read() if args.code == "-" else args.code
    limits = Limits(wall_time=args.timeout) if args.timeout is not None else None
    with open_client(argparse.Namespace(**{**vars(args), "timeout": None})) as client:
        session = client.get_session(name_of(args.name))
        with session.cell_stream(code, limits=limits) as stream:
            result = relay(stream)
    return _exit_code(result)


def follow_exec(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        session = client.get_session(name_of(args.name))
        with session.attach(args.exec_id, args.from_sequence) as stream:
            result = relay(stream)
    return _exit_code(result)


def copy_file(args: argparse.Namespace) -> int:
    source, target = _REMOTE.match(args.source), _REMOTE.match(args.target)
    if source and target:
        raise CliError("copy between a session and this machine: SRC or DST is NAME:PATH, not both")
    if not (source or target):
        raise CliError("one of SRC and DST must be NAME:PATH, a file of a session")
    with open_client(args) as client:
        if target:
            return _copy_in(client, name_of(target[1]), target[2], args.source)
        assert source is not None
        return _copy_out(client, name_of(source[1]), source[2], args.target)


def relay(events: Iterable[ExecEvent]) -> ExecResult | None:
    """Copy a command's output to ours as it arrives; its verdict (None if cut short)."""
    result: ExecResult | None = None
    for event in events:
        if isinstance(event, ExecOutput):
            sink = sys.stdout if event.stream is OutputStream.STDOUT else sys.stderr
            sink.buffer.write(event.data)
            sink.buffer.flush()
        elif isinstance(event, ExecDisplay):
            if event.mime_type.startswith("text/plain"):
                sys.stdout.buffer.write(event.data.rstrip(b"\n") + b"\n")
                sys.stdout.buffer.flush()
            else:
                say(f"display {event.mime_type} ({human_bytes(len(event.data))}) not shown")
        elif isinstance(event, ExecFinished):
            result = event.result
    return result


def name_of(text: str) -> str:
    """`sessions/ID` from NAME as typed; a malformed one is a usage error."""
    try:
        return session_name(text)
    except ValueError as error:
        raise CliError(str(error)) from None


def _started(stream: ExecStream) -> int:
    """Print a detached Exec's id once it started, and leave it running."""
    with stream:
        for event in stream:
            if isinstance(event, ExecStarted):
                print(event.exec_id, flush=True)
                return 0  # leaving cancels only our call: a detached Exec goes on
    raise CliError("the command ended before it started", EXIT_SOFTWARE)


def _pump_stdin(shell: InteractiveExec) -> None:
    """Our stdin to the command's, chunk by chunk as it can be read; EOF closes it."""
    try:
        stdin = sys.stdin.fileno() if sys.stdin is not None else None
        while stdin is not None and (chunk := os.read(stdin, _CHUNK)):
            shell.write(chunk)
        shell.close_stdin()
    except (OSError, ValueError):
        pass  # our stdin is unreadable (treated as EOF), or the command is over


@contextmanager
def _interrupts_to(shell: InteractiveExec) -> Iterator[None]:
    """The first Ctrl-C becomes SIGINT of the command; the next one interrupts us."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    forwarded = False

    def forward(number: int, frame: FrameType | None) -> None:
        nonlocal forwarded
        if forwarded:
            raise KeyboardInterrupt
        forwarded = True
        try:
            shell.signal(signal.SIGINT)
        except ValueError:  # it is over already
            raise KeyboardInterrupt from None

    previous = signal.signal(signal.SIGINT, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _exit_code(result: ExecResult | None) -> int:
    if result is None:
        raise CliError("the command ended without a verdict", EXIT_SOFTWARE)
    return outcome(result, verbose=False)


def _copy_in(client: Client, name: str, path: str, source: str) -> int:
    data = sys.stdin.buffer.read() if source == "-" else read_file(Path(source), "file")
    if not path or path.endswith("/"):
        if source == "-":
            raise CliError("name the file to write: NAME:PATH")
        path += Path(source).name
    executable = source != "-" and os.access(source, os.X_OK)
    client.get_session(name).write_files({path: data}, 0o755 if executable else None)
    return 0


def _copy_out(client: Client, name: str, path: str, target: str) -> int:
    if not path or path.endswith("/"):
        raise CliError("name the file to copy: NAME:PATH")
    files = client.get_session(name).read_files([path])
    if len(files) != 1:
        raise CliError(f"{name}:{path} matches {len(files)} files: copy them one by one")
    (found,) = files
    if found.status is OutputFileStatus.MISSING:
        raise CliError(f"{name}:{path}: no such file", EXIT_NO_INPUT)
    if found.status is OutputFileStatus.NOT_REGULAR:
        raise CliError(f"{name}:{path}: not a regular file", EXIT_NO_INPUT)
    if found.status not in (OutputFileStatus.OK, OutputFileStatus.TRUNCATED):
        raise CliError(
            f"{name}:{path}: {found.status.value} {found.reason}".rstrip(), EXIT_SOFTWARE
        )
    if target == "-":
        sys.stdout.buffer.write(found.content)
        sys.stdout.buffer.flush()
    else:
        local = Path(target)
        if local.is_dir():
            local = local / Path(found.path).name
        try:
            local.write_bytes(found.content)
        except OSError as error:
            raise CliError(
                f"cannot write {local}: {error.strerror or error}", EXIT_CANT_CREATE
            ) from None
    if found.status is OutputFileStatus.TRUNCATED:
        say(
            f"{name}:{path} was cut: wrote the first {human_bytes(len(found.content))} "
            f"of {human_bytes(found.size)}" + (f" ({found.reason})" if found.reason else "")
        )
        return EXIT_LIMIT
    return 0


def _sequence(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = -1
    if number < 0:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}")
    return number
