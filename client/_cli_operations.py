"""`codebeaker submit`, `wait` and `operations list|get|cancel|delete`: queued executions
from the command line.

`submit` takes exactly `run`'s description of a program and prints only the
operation's name, so a script can keep it (`op=$(codebeaker submit main.py)`);
`wait NAME` later shows the outcome exactly as `run` would have shown it and
exits with the same code (it reuses `run`'s reporting, `_cli_report`). The
`operations` commands print one line per operation, or JSON with `--json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TypeAlias

from codebeaker.client import _cli_run
from codebeaker.client._cli_connect import open_client
from codebeaker.client._cli_report import relay
from codebeaker.client._cli_support import EXIT_INTERRUPTED, PROG, CliError, say
from codebeaker.client._operation_convert import operation_name
from codebeaker.client.operation import Operation
from codebeaker.client.types import Finished, OperationState

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
JsonValue: TypeAlias = "str | int | float | bool | dict[str, JsonValue] | None"

_STATES = [s.value for s in OperationState if s is not OperationState.UNSPECIFIED]


def add_commands(
    subparsers: SubParsers,
    connection: argparse.ArgumentParser,
    wait_connection: argparse.ArgumentParser,
) -> None:
    submit = subparsers.add_parser(
        "submit",
        parents=[connection],
        help="queue source files to run later; print the operation's name",
        usage=f"{PROG} submit [options] FILE [FILE ...] [-- ARG ...]",
        description="Queue FILE (with any further FILEs beside it) on the server, as "
        f"`{PROG} run` would run it, and print the operation's name (operations/ID) at once. "
        f"`{PROG} wait NAME` shows its outcome.",
    )
    _cli_run.add_program_arguments(submit)
    submit.add_argument(
        "--request-id",
        metavar="ID",
        help="idempotency key: submitting again with the same ID prints the same operation "
        "instead of queueing another (safe retries)",
    )
    submit.set_defaults(handler=submit_files)

    wait = subparsers.add_parser(
        "wait",
        parents=[wait_connection],
        help="wait for a submitted execution; show and exit as run does",
        description="Wait until operation NAME is done, then show its output and exit "
        f"exactly as `{PROG} run` does (the program's exit code, ...). After --timeout, exit "
        "124 with the operation still going on.",
        epilog=f"Exit codes: run's (see `{PROG} run --help`); also 124 when not done within "
        "--timeout, 66 no such operation, 69/70/... as the call that failed to run it would, "
        "70 cancelled.",
    )
    wait.add_argument("name", metavar="NAME", help="operations/ID, or the ID alone")
    _cli_run.add_display_arguments(wait)
    wait.set_defaults(handler=wait_for)

    operations = subparsers.add_parser(
        "operations",
        help="list, show, cancel or delete submitted executions",
        description="Submitted executions (long-running operations) on the server.",
    )
    commands = operations.add_subparsers(title="commands", metavar="COMMAND")
    listing = commands.add_parser(
        "list",
        parents=[connection],
        help="one line per operation, newest first",
        description="List the operations, newest first: NAME STATE CREATED ATTEMPTS OUTCOME.",
    )
    listing.add_argument(
        "--state", type=str.upper, choices=_STATES, help="only operations in this state"
    )
    listing.add_argument("--done", action="store_true", help="only operations that are done")
    _json_flag(listing, "one JSON object per line instead of the table")
    listing.set_defaults(handler=list_operations)

    get = commands.add_parser(
        "get",
        parents=[connection],
        help="an operation's state, times and outcome",
        description="Show one operation: its state, times, attempts and outcome "
        f"(the program's output: `{PROG} wait NAME`).",
    )
    get.add_argument("name", metavar="NAME", help="operations/ID, or the ID alone")
    _json_flag(get, "as one JSON object")
    get.set_defaults(handler=get_operation)

    for verb, handler, summary in (
        ("cancel", cancel_operation, "cancel a queued or running operation"),
        ("delete", delete_operation, "forget an operation and its result on the server"),
    ):
        command = commands.add_parser(verb, parents=[connection], help=summary)
        command.add_argument("name", metavar="NAME", help="operations/ID, or the ID alone")
        command.set_defaults(handler=handler)
    operations.set_defaults(handler=_choose(operations))


def submit_files(args: argparse.Namespace) -> int:
    request = _cli_run.read_request(args)
    with open_client(args) as client:
        options = request.options
        if args.request_id is not None:
            options["request_id"] = args.request_id
        operation = client.submit(request.language(args, client), request.program.source, **options)
    print(operation.name, flush=True)
    return 0


def wait_for(args: argparse.Namespace) -> int:
    name = _name(args.name)
    client = open_client(args)
    try:
        operation = client.get_operation(name)
        result = operation.wait(timeout=args.timeout)
    except KeyboardInterrupt:
        # Out at once, closing nothing: grpc drains a channel's calls when it is
        # closed or collected, and after a Ctrl-C during a unary call that drain
        # now and then waits forever (seen under load; cf. grpc/grpc#19973). Nothing
        # is half-written yet and the server needs nothing from us: the operation
        # goes on.
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    except BaseException:
        client.close()
        raise
    client.close()
    if args.verbose:
        say(_times(operation))
    relay([Finished(result)], verbose=args.verbose, show_case_output=args.show_output)
    return _cli_run.conclude(result, len(result.test_cases), args)


def list_operations(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if not args.json:
            print(_row("NAME", "STATE", "CREATED", "ATTEMPTS", "OUTCOME"), flush=True)
        for operation in client.list_operations(state=args.state, done=args.done or None):
            if args.json:
                print(json.dumps(as_json(operation)), flush=True)
            else:
                print(_line(operation), flush=True)
    return 0


def get_operation(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        operation = client.get_operation(_name(args.name))
    if args.json:
        print(json.dumps(as_json(operation), indent=2))
        return 0
    for key, value in as_json(operation).items():
        if isinstance(value, dict):
            for part, detail in value.items():
                print(f"{key}.{part}: {_text(detail)}")
        elif value not in (None, ""):
            print(f"{key}: {_text(value)}")
    return 0


def cancel_operation(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        operation = client.get_operation(_name(args.name))
        operation.cancel()
    requested = " (cancel requested)" if operation.metadata.cancel_requested else ""
    print(f"{operation.name} {operation.state.value}{requested}")
    return 0


def delete_operation(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.get_operation(_name(args.name)).delete()
    return 0


def as_json(operation: Operation) -> dict[str, JsonValue]:
    """An operation as plain JSON values: metadata, and the verdict or the error."""
    meta = operation.metadata
    shown: dict[str, JsonValue] = {
        "name": operation.name,
        "state": operation.state.value,
        "done": operation.done,
        "create_time": _iso(meta.create_time),
        "start_time": _iso(meta.start_time),
        "end_time": _iso(meta.end_time),
        "attempts": meta.attempts,
        "language": meta.language,
        "execution_id": meta.execution_id,
        "request_id": meta.request_id,
        "cancel_requested": meta.cancel_requested,
        "result": None,
        "error": None,
    }
    if operation.done and operation.error is None:
        result = operation.result(timeout=0)
        shown["result"] = {
            "status": result.status.value,
            "exit_code": result.exit_code,
            "signal": result.signal,
            "wall_time": result.wall_time,
            "cpu_time": result.cpu_time,
            "peak_memory_bytes": result.peak_memory_bytes,
            "message": result.message,
        }
    elif operation.error is not None:
        error = operation.error
        shown["error"] = {"code": error.code, "message": error.details, "reason": error.reason}
    return shown


def _line(operation: Operation) -> str:
    """`operations/ab12  SUCCEEDED  2026-12-02T10:00:00Z  1  OK exit=0`."""
    meta = operation.metadata
    created = meta.create_time.replace(microsecond=0) if meta.create_time else None
    state, attempts = operation.state.value, str(meta.attempts)
    return _row(operation.name, state, _iso(created) or "-", attempts, _outcome(operation))


def _row(name: str, state: str, created: str, attempts: str, outcome: str) -> str:
    return f"{name:<43}  {state:<9}  {created:<20}  {attempts:>8}  {outcome}".rstrip()


def _outcome(operation: Operation) -> str:
    if operation.error is not None:
        return f"{operation.error.code}: {operation.error.details}"
    if operation.done:
        result = operation.result(timeout=0)
        return f"{result.status.value} exit={result.exit_code}"
    return "cancel-requested" if operation.metadata.cancel_requested else "-"


def _times(operation: Operation) -> str:
    meta = operation.metadata
    parts = [f"{operation.name} {operation.state.value}", f"attempts={meta.attempts}"]
    if meta.create_time and meta.start_time:
        parts.append(f"queued={(meta.start_time - meta.create_time).total_seconds():.3f}s")
    if meta.start_time and meta.end_time:
        parts.append(f"ran={(meta.end_time - meta.start_time).total_seconds():.3f}s")
    return " ".join(parts)


def _name(text: str) -> str:
    try:
        return operation_name(text)
    except ValueError as error:
        raise CliError(str(error)) from None


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _text(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "" if value is None else str(value)


def _json_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def _choose(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def usage(_args: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        raise CliError("choose a command: list, get, cancel or delete")

    return usage
