"""`codebeaker session ...`: stateful sandboxes from the command line.

`create` prints only the session's name, so a script can keep it
(`s=$(codebeaker session create python)`); `list`, `get` and `execs` print a
table or key/value lines, or JSON with `--json`; `pause`, `resume` and
`delete` change it. Running commands in it (`exec`, `logs`) and copying files
(`cp`) are in `_cli_session_io`. Every failure is one line and an exit code,
as for the other commands (`_cli_support`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TypeAlias

from codebeaker.client import _cli_session_io
from codebeaker.client._cli_connect import open_client
from codebeaker.client._cli_session_io import name_of
from codebeaker.client._cli_support import (
    CliError,
    add_package_flag,
    parse_env,
    parse_seconds,
    parse_size,
)
from codebeaker.client.session_types import ExecInfo, SessionInfo, SessionState
from codebeaker.client.types import Limits

SubParsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
JsonValue: TypeAlias = "str | int | float | bool | list[JsonValue] | dict[str, JsonValue] | None"

_STATES = [s.value for s in SessionState if s is not SessionState.UNSPECIFIED]


def add_commands(subparsers: SubParsers, connection: argparse.ArgumentParser) -> None:
    sessions = subparsers.add_parser(
        "session",
        help="create, use and end sessions (sandboxes that last between calls)",
        description="Sessions: sandboxes that keep their files and processes from one "
        "command to the next, until deleted or expired. NAME is sessions/ID or the ID.",
    )
    commands = sessions.add_subparsers(title="commands", metavar="COMMAND")

    create = commands.add_parser(
        "create",
        parents=[connection],
        help="start a session; print its name",
        description="Start a session of LANGUAGE and print its name (sessions/ID).",
    )
    create.add_argument("language", metavar="LANGUAGE", help="language id or alias")
    create.add_argument("--language-version", metavar="VERSION", help="language version")
    limits = create.add_argument_group("the session's limits (default: the server's)")
    limits.add_argument("--memory", type=parse_size, metavar="BYTES", help="memory, e.g. 512M")
    limits.add_argument("--processes", type=int, metavar="N", help="processes and threads")
    limits.add_argument("--disk", type=parse_size, metavar="BYTES", help="working directory size")
    limits.add_argument("--cpus", type=float, metavar="N", help="CPUs it may use, e.g. 0.5")
    limits.add_argument(
        "--idle-timeout", type=parse_seconds, metavar="S", help="end it after S without a call"
    )
    limits.add_argument("--lifetime", type=parse_seconds, metavar="S", help="end it after S")
    defaults = create.add_argument_group("each command's limits (default: the server's)")
    defaults.add_argument("--wall-time", type=parse_seconds, metavar="S", help="wall-clock time")
    defaults.add_argument("--cpu-time", type=parse_seconds, metavar="S", help="CPU time")
    defaults.add_argument(
        "--max-output", type=parse_size, metavar="BYTES", help="cap on each of stdout and stderr"
    )
    _env_flag(create, "an environment variable of every command")
    add_package_flag(create, "a package to install for it from the server's allow-list")
    _label_flag(create, "a label of the session (for list --label)")
    create.add_argument("--id", metavar="ID", help="its id (4-63 of a-z, 0-9, -; a letter first)")
    create.add_argument(
        "--request-id",
        metavar="KEY",
        help="idempotency key: creating again with it prints the same session",
    )
    _json_flag(create, "print the whole session as JSON instead of its name")
    create.set_defaults(handler=create_session)

    listing = commands.add_parser(
        "list",
        parents=[connection],
        help="one line per session",
        description="List the sessions (by default the live ones): "
        "NAME STATE LANGUAGE CREATED EXECS LABELS.",
    )
    listing.add_argument(
        "--state",
        dest="states",
        action="append",
        type=str.upper,
        choices=_STATES,
        help="only sessions in this state; repeat for more",
    )
    _label_flag(listing, "only sessions carrying this label; repeat for more")
    _json_flag(listing, "one JSON object per line instead of the table")
    listing.set_defaults(handler=list_sessions)

    get = commands.add_parser(
        "get", parents=[connection], help="a session's state, limits, usage and times"
    )
    _name_argument(get)
    _json_flag(get, "as one JSON object")
    get.set_defaults(handler=get_session)

    for verb, handler, summary in (
        ("pause", pause_session, "freeze a session (no CPU; memory and files kept)"),
        ("resume", resume_session, "thaw a paused session"),
        ("delete", delete_session, "kill and remove a session, whatever its state"),
    ):
        command = commands.add_parser(verb, parents=[connection], help=summary)
        _name_argument(command)
        command.set_defaults(handler=handler)

    execs = commands.add_parser(
        "execs",
        parents=[connection],
        help="the commands a session ran or runs",
        description="List the Execs a session keeps a record of, oldest first: "
        "EXEC_ID STATE STARTED RESULT COMMAND.",
    )
    _name_argument(execs)
    _json_flag(execs, "one JSON object per line instead of the table")
    execs.set_defaults(handler=list_execs)

    _cli_session_io.add_commands(commands, connection)
    sessions.set_defaults(handler=_choose(sessions))


def create_session(args: argparse.Namespace) -> int:
    try:
        limits = Limits(
            memory_bytes=args.memory,
            max_processes=args.processes,
            wall_time=args.wall_time,
            cpu_time=args.cpu_time,
            max_output_bytes=args.max_output,
        )
    except ValueError as error:
        raise CliError(str(error)) from None
    with open_client(args) as client:
        try:
            session = client.create_session(
                args.language,
                version=args.language_version,
                limits=limits,
                env=dict(args.env),
                labels=dict(args.labels),
                idle_timeout=args.idle_timeout,
                lifetime=args.lifetime,
                disk_bytes=args.disk,
                cpus=args.cpus,
                session_id=args.id,
                request_id=args.request_id,
                packages=dict(args.packages),
            )
        except ValueError as error:
            raise CliError(str(error)) from None
    if args.json:
        print(json.dumps(as_json(session.info), indent=2))
    else:
        print(session.name, flush=True)
    return 0


def list_sessions(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        if not args.json:
            print(_row("NAME", "STATE", "LANGUAGE", "CREATED", "EXECS", "LABELS"), flush=True)
        for info in client.list_sessions(states=args.states, labels=dict(args.labels)):
            if args.json:
                print(json.dumps(as_json(info)), flush=True)
            else:
                print(_line(info), flush=True)
    return 0


def get_session(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        info = client.get_session(name_of(args.name)).info
    if args.json:
        print(json.dumps(as_json(info), indent=2))
        return 0
    for key, value in as_json(info).items():
        if isinstance(value, dict):
            for part, detail in value.items():
                if detail not in (None, ""):
                    print(f"{key}.{part}: {_text(detail)}")
        elif value not in (None, ""):
            print(f"{key}: {_text(value)}")
    return 0


def pause_session(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        info = client.get_session(name_of(args.name)).pause().info
    print(f"{info.name} {info.state.value}")
    return 0


def resume_session(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        info = client.get_session(name_of(args.name)).resume().info
    print(f"{info.name} {info.state.value}")
    return 0


def delete_session(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        client.get_session(name_of(args.name)).delete()
    return 0


def list_execs(args: argparse.Namespace) -> int:
    with open_client(args) as client:
        execs = client.get_session(name_of(args.name)).list_execs()
    if not args.json:
        print(f"{'EXEC_ID':<12}  {'STATE':<7}  {'STARTED':<20}  {'RESULT':<22}  COMMAND")
    for info in execs:
        if args.json:
            print(json.dumps(exec_json(info)), flush=True)
        else:
            started = _iso(info.start_time.replace(microsecond=0) if info.start_time else None)
            command = " ".join(info.argv) or info.code.partition("\n")[0]
            line = f"{info.exec_id:<12}  {info.state.value:<7}  {started or '-':<20}  "
            print(f"{line}{_verdict(info):<22}  {command}".rstrip(), flush=True)
    return 0


def as_json(info: SessionInfo) -> dict[str, JsonValue]:
    """A session as plain JSON values (times as ISO 8601 UTC)."""
    limits = info.limits
    usage = info.usage
    return {
        "name": info.name,
        "id": info.id,
        "state": info.state.value,
        "reason": info.reason,
        "language": info.language,
        "version": info.version,
        "limits": {
            "memory_bytes": limits.memory_bytes,
            "max_processes": limits.max_processes,
            "wall_time": limits.wall_time,
            "cpu_time": limits.cpu_time,
            "max_output_bytes": limits.max_output_bytes,
        },
        "idle_timeout": info.idle_timeout,
        "lifetime": info.lifetime,
        "disk_bytes": info.disk_bytes,
        "cpus": info.cpus,
        "labels": _strings(info.labels),
        "env": _strings(info.env),
        "packages": _strings(info.packages),
        "usage": None
        if usage is None
        else {
            "cpu_time": usage.cpu_time,
            "memory_bytes": usage.memory_bytes,
            "peak_memory_bytes": usage.peak_memory_bytes,
            "disk_bytes": usage.disk_bytes,
            "sample_time": _iso(usage.sample_time),
        },
        "exec_count": info.exec_count,
        "create_time": _iso(info.create_time),
        "update_time": _iso(info.update_time),
        "last_activity_time": _iso(info.last_activity_time),
        "expire_time": _iso(info.expire_time),
    }


def exec_json(info: ExecInfo) -> dict[str, JsonValue]:
    result = info.result
    return {
        "exec_id": info.exec_id,
        "state": info.state.value,
        "argv": list(info.argv),
        "code": info.code,
        "detached": info.detached,
        "start_time": _iso(info.start_time),
        "end_time": _iso(info.end_time),
        "result": None
        if result is None
        else {
            "status": result.status.value,
            "exit_code": result.exit_code,
            "signal": result.signal,
            "wall_time": result.wall_time,
            "cpu_time": result.cpu_time,
            "message": result.message,
        },
        "last_sequence": info.last_sequence,
        "first_retained_sequence": info.first_retained_sequence,
    }


def _line(info: SessionInfo) -> str:
    created = info.create_time.replace(microsecond=0) if info.create_time else None
    labels = ",".join(f"{k}={v}" for k, v in sorted(info.labels.items()))
    return _row(
        info.name,
        info.state.value,
        info.language,
        _iso(created) or "-",
        str(info.exec_count),
        labels or "-",
    )


def _row(name: str, state: str, language: str, created: str, execs: str, labels: str) -> str:
    return f"{name:<30}  {state:<10}  {language:<10}  {created:<20}  {execs:>5}  {labels}".rstrip()


def _verdict(info: ExecInfo) -> str:
    if info.result is None:
        return "-"
    result = info.result
    if result.signal:
        return f"{result.status.value} signal={result.signal}"
    return f"{result.status.value} exit={result.exit_code}"


def _strings(mapping: Mapping[str, str]) -> dict[str, JsonValue]:
    return {key: mapping[key] for key in sorted(mapping)}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat().replace("+00:00", "Z")


def _text(value: JsonValue) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)


def _name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="sessions/ID, or the ID alone")


def _env_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--env", action="append", default=[], type=parse_env, metavar="KEY=VALUE", help=help_text
    )


def _label_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--label",
        dest="labels",
        action="append",
        default=[],
        type=parse_env,
        metavar="KEY=VALUE",
        help=help_text,
    )


def _json_flag(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument("--json", action="store_true", help=help_text)


def _choose(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    def usage(_args: argparse.Namespace) -> int:
        parser.print_usage(sys.stderr)
        raise CliError(
            "choose a command: create, list, get, exec, cp, logs, execs, pause, resume or delete"
        )

    return usage
