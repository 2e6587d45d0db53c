"""Changing the queue's worker count of a running server, from outside the process.

The count lives in a small settings file, `queue.json` in the server's state
directory (`{"queue_workers": 8}`); when it is there it beats `--queue-workers`.
A running server re-reads it when it changes (checked every second) and at once
on SIGHUP: more workers start claiming, surplus ones stop after the job they
run, so no work is lost. `codebeaker queue workers N [--state-dir DIR]` writes
it (atomically); `codebeaker queue workers` prints what is set.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from codebeaker.server.operations.config import StateConfig

SETTINGS = "queue.json"


def read_workers(state_dir: Path) -> int | None:
    """The worker count the settings file sets; None without one (or an unreadable one)."""
    try:
        value = json.loads((state_dir / SETTINGS).read_text(encoding="utf-8"))["queue_workers"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and value >= 0 else None


def write_workers(state_dir: Path, workers: int) -> Path:
    if workers < 0:
        raise ValueError("queue_workers must not be negative")
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = state_dir / SETTINGS
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    temporary.write_text(json.dumps({"queue_workers": workers}) + "\n", encoding="utf-8")
    temporary.replace(path)
    return path


def settings_stamp(state_dir: Path) -> tuple[int, int] | None:
    """What changes when the settings file does (its mtime and size); None without one."""
    try:
        status = (state_dir / SETTINGS).stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_size


def add_queue_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    queue = subparsers.add_parser(
        "queue",
        help="the operation queue of a running server",
        description="Settings of a running server's operation queue.",
    )
    commands = queue.add_subparsers(dest="queue_command", metavar="COMMAND")
    command = commands.add_parser(
        "workers",
        help="set (or print) the queue worker count of the server on --state-dir",
        description="Write the worker count to STATE_DIR/queue.json; the server on that state "
        "directory applies it within a second (at once on SIGHUP), finishing running jobs.",
    )
    command.add_argument("count", nargs="?", type=int, help="workers from now on; omit to print")
    command.add_argument(
        "--state-dir", default=None, help="the server's --state-dir [env CODEBEAKER_STATE_DIR]"
    )
    command.set_defaults(handler=run_workers)


def run_workers(args: argparse.Namespace) -> int:
    chosen = args.state_dir or os.environ.get("CODEBEAKER_STATE_DIR", "")
    state_dir = StateConfig(state_dir=chosen).directory()
    if args.count is None:
        workers = read_workers(state_dir)
        print("not set (the server's --queue-workers)" if workers is None else workers)
        return 0
    try:
        path = write_workers(state_dir, args.count)
    except (ValueError, OSError) as error:
        print(f"codebeaker queue workers: {error}", file=sys.stderr)
        return 2
    print(f"queue_workers = {args.count} in {path}")
    return 0
