"""`codebeaker session ...`, run as processes against the fake SessionService.

`exec` is checked as a terminal uses it: stdin written line by line into a pipe
gets its answer before the next line is written, the exit code is the
command's, and Ctrl-C reaches the command as SIGINT.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import session_pb2 as spb
from tests.unit.cli_environment import environment
from tests.unit.fake_sessions import FakeSessions, serve_sessions

CLIENT_ONLY = [sys.executable, "-m", "codebeaker.client"]
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "codebeaker")]


@pytest.fixture
def served() -> Iterator[tuple[FakeSessions, str]]:
    with serve_sessions() as pair:
        yield pair


@pytest.fixture
def fake(served: tuple[FakeSessions, str]) -> FakeSessions:
    return served[0]


@pytest.fixture
def address(served: tuple[FakeSessions, str]) -> str:
    return served[1]


def session_command(
    address: str,
    *args: str | Path,
    stdin: bytes = b"",
    cwd: Path | None = None,
    command: list[str] = CLIENT_ONLY,
) -> subprocess.CompletedProcess[bytes]:
    """`codebeaker session ARGS... --address ADDRESS` (ARGS may end with `-- CMD ...`)."""
    words = list(map(str, args))
    split = words.index("--") if "--" in words else len(words)
    return subprocess.run(
        [*command, "session", *words[:split], "--address", address, *words[split:]],
        input=stdin,
        capture_output=True,
        env=environment(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


def started(address: str, *args: str) -> subprocess.Popen[bytes]:
    """`codebeaker session ARGS...` running, with pipes to talk to it."""
    words = list(args)
    split = words.index("--") if "--" in words else len(words)
    return subprocess.Popen(
        [*CLIENT_ONLY, "session", *words[:split], "--address", address, *words[split:]],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    )


def test_create_prints_only_the_name_and_sends_every_flag(fake: FakeSessions, address: str) -> None:
    done = session_command(
        address, "create", "python", "--memory", "512M", "--processes", "16", "--disk", "1G",
        "--cpus", "0.5", "--idle-timeout", "10m", "--lifetime", "3600", "--wall-time", "2.5s",
        "--env", "A=1", "--label", "team=judge", "--label", "tier=free", "--id", "cli-one",
        "--request-id", "key-1", "--language-version", "3.11",
    )  # fmt: skip
    assert (done.returncode, done.stdout, done.stderr) == (0, b"sessions/cli-one\n", b"")
    (request,) = fake.creates
    sent = request.session
    assert (request.session_id, request.request_id, sent.version) == ("cli-one", "key-1", "3.11")
    assert sent.limits.memory_bytes == 512 << 20 and sent.limits.max_processes == 16
    assert sent.limits.wall_time == Duration(seconds=2, nanos=500_000_000)
    assert (sent.disk_bytes, sent.cpus) == (1 << 30, 0.5)
    assert sent.idle_timeout == Duration(seconds=600) and sent.lifetime == Duration(seconds=3600)
    assert dict(sent.env) == {"A": "1"}
    assert dict(sent.labels) == {"team": "judge", "tier": "free"}


def test_create_json_is_the_whole_record(address: str) -> None:
    done = session_command(address, "create", "bash", "--json", "--label", "k=v")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["name"].startswith("sessions/") and shown["id"] == shown["name"][9:]
    assert (shown["state"], shown["language"], shown["labels"]) == ("READY", "bash", {"k": "v"})
    assert shown["usage"]["memory_bytes"] == 1 << 20
    assert shown["create_time"].endswith("Z") and shown["last_activity_time"] is None


def test_a_refused_create_is_one_line_and_a_usage_exit(fake: FakeSessions, address: str) -> None:
    done = session_command(address, "create", "cobol")
    assert (done.returncode, done.stdout) == (2, b"")
    assert done.stderr == b"codebeaker: invalid request: unknown language 'cobol'\n"


def test_create_works_from_the_console_script(fake: FakeSessions, address: str) -> None:
    done = session_command(address, "create", "python", command=CONSOLE_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() in fake.sessions


def test_list_shows_live_sessions_filtered(fake: FakeSessions, address: str) -> None:
    fake.add("alpha", team="a")
    fake.add("beta", state="PAUSED", team="b")
    fake.add("gamma", state="TERMINATED", team="a")
    table = session_command(address, "list")
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.decode().splitlines()
    assert header.split() == ["NAME", "STATE", "LANGUAGE", "CREATED", "EXECS", "LABELS"]
    assert [row.split()[:2] for row in rows] == [
        ["sessions/alpha", "READY"],
        ["sessions/beta", "PAUSED"],
    ]
    assert rows[0].split()[-1] == "team=a"

    lines = session_command(address, "list", "--json", "--state", "terminated", "--label", "team=a")
    assert [json.loads(line)["name"] for line in lines.stdout.splitlines()] == ["sessions/gamma"]
    assert list(fake.lists[-1].states) == [spb.SESSION_STATE_TERMINATED]
    assert dict(fake.lists[-1].labels) == {"team": "a"}


def test_get_by_id_or_name_and_unknown_ones(fake: FakeSessions, address: str) -> None:
    name = fake.add("shown", team="x")
    lines = session_command(address, "get", "shown").stdout.decode().splitlines()
    assert "name: sessions/shown" in lines and "state: READY" in lines
    assert "labels.team: x" in lines
    assert json.loads(session_command(address, "get", name, "--json").stdout)["id"] == "shown"

    missing = session_command(address, "get", "nope")
    assert (missing.returncode, missing.stdout) == (66, b"")
    assert missing.stderr == b"codebeaker: not found: no session sessions/nope\n"
    malformed = session_command(address, "get", "a/b")
    assert malformed.returncode == 2 and b"a session name is sessions/ID" in malformed.stderr


def test_pause_resume_delete(fake: FakeSessions, address: str) -> None:
    name = fake.add("cycle")
    assert session_command(address, "pause", "cycle").stdout == f"{name} PAUSED\n".encode()
    paused = session_command(address, "exec", "cycle", "--", "echo")
    assert paused.returncode == 70
    assert paused.stderr == f"codebeaker: not possible now: {name} is paused\n".encode()
    assert session_command(address, "resume", name).stdout == f"{name} READY\n".encode()
    deleted = session_command(address, "delete", "cycle")
    assert (deleted.returncode, deleted.stdout, deleted.stderr) == (0, b"", b"")
    assert name not in fake.sessions
    assert session_command(address, "delete", "cycle").returncode == 66


def test_exec_passes_output_and_the_exit_code_through(fake: FakeSessions, address: str) -> None:
    fake.add("runner")
    ok = session_command(
        address, "exec", "runner", "--env", "B=2", "--cwd", "sub", "--timeout", "3",
        "--", "env",
    )  # fmt: skip
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, b"B=2\ncwd=sub\n", b"")
    (start,) = fake.starts
    assert dict(start.env) == {"B": "2"} and start.cwd == "sub"
    assert start.limits.wall_time == Duration(seconds=3)  # the command's limit, not a deadline

    failed = session_command(address, "exec", "runner", "--", "fail")
    assert (failed.returncode, failed.stdout, failed.stderr) == (3, b"", b"boom\n")
    flags = session_command(address, "exec", "runner", "--", "echo", "-n", "--x")
    assert flags.stdout == b"-n --x\n"  # after --, every word is the command's
    missing = session_command(address, "exec", "runner", "--", "nothing-here")
    assert missing.returncode == 127 and missing.stderr == b"sh: nothing-here: not found\n"
    bare = session_command(address, "exec", "runner")
    assert bare.returncode == 2 and b"name the command to run" in bare.stderr


def test_exec_sends_stdin_as_it_is_read(fake: FakeSessions, address: str) -> None:
    fake.add("talk")
    process = started(address, "exec", "talk", "--", "upper")
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b"hello\n")
        process.stdin.flush()
        # Answered while our stdin is still open: the pipe is relayed, not read whole.
        assert process.stdout.readline() == b"HELLO\n"
        process.stdin.write(b"again\n")
        process.stdin.flush()
        assert process.stdout.readline() == b"AGAIN\n"
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    finally:
        process.kill()
        process.wait()
    run = fake.execs["sessions/talk"]["e1"]
    assert run.stdin_seen == [b"hello\n", b"again\n"]


def test_ctrl_c_reaches_the_command_as_sigint(fake: FakeSessions, address: str) -> None:
    fake.add("interrupted")
    process = started(address, "exec", "interrupted", "--", "sleep")
    assert process.stdout is not None and process.stderr is not None
    try:
        assert process.stdout.readline() == b"tick\n"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert process.stderr.read() == b"codebeaker: killed by signal 2 (SIGINT)\n"
    finally:
        process.kill()
        process.wait()
    assert fake.stopped == []  # it ended by the signal; nothing was left running


def test_detach_then_logs_and_execs(fake: FakeSessions, address: str) -> None:
    name = fake.add("background")
    detached = session_command(address, "exec", "background", "--detach", "--", "sleep")
    assert (detached.returncode, detached.stdout, detached.stderr) == (0, b"e1\n", b"")
    assert fake.starts[0].detached and fake.starts[0].close_stdin

    table = session_command(address, "execs", "background").stdout.decode().splitlines()
    assert table[0].split() == ["EXEC_ID", "STATE", "STARTED", "RESULT", "COMMAND"]
    assert table[1].split()[:2] == ["e1", "RUNNING"] and table[1].endswith("sleep")

    following = started(address, "logs", "background", "e1")
    assert following.stdout is not None
    try:
        assert following.stdout.readline() == b"tick\n"  # replayed
        fake.release(name, "e1")
        assert following.stdout.read() == b"done\n"  # live
        assert following.wait(timeout=30) == 0
    finally:
        following.kill()
        following.wait()

    replay = session_command(address, "logs", "background", "e1", "--from", "3")
    assert (replay.returncode, replay.stdout) == (0, b"done\n")
    (record,) = [
        json.loads(line)
        for line in session_command(address, "execs", name, "--json").stdout.splitlines()
    ]
    assert record["state"] == "DONE" and record["result"]["status"] == "OK"
    assert record["argv"] == ["sleep"] and record["detached"] is True
    unknown = session_command(address, "logs", "background", "e9")
    assert unknown.returncode == 66 and unknown.stderr == b"codebeaker: not found: no exec e9\n"


def test_cp_copies_in_and_out(fake: FakeSessions, address: str, tmp_path: Path) -> None:
    name = fake.add("files")
    tool = tmp_path / "tool.sh"
    tool.write_bytes(b"#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    assert session_command(address, "cp", tool, "files:bin/").returncode == 0
    assert fake.files[name]["bin/tool.sh"] == (b"#!/bin/sh\necho hi\n", 0o755)
    piped = session_command(address, "cp", "-", f"{name}:in.txt", stdin=b"from stdin")
    assert piped.returncode == 0 and fake.files[name]["in.txt"] == (b"from stdin", 0o644)

    out = session_command(address, "cp", "files:in.txt", "-")
    assert (out.returncode, out.stdout) == (0, b"from stdin")
    assert session_command(address, "cp", "files:bin/tool.sh", tmp_path / "copy").returncode == 0
    assert (tmp_path / "copy").read_bytes() == b"#!/bin/sh\necho hi\n"
    into = tmp_path / "dir"
    into.mkdir()
    assert session_command(address, "cp", "files:in.txt", into).returncode == 0
    assert (into / "in.txt").read_bytes() == b"from stdin"


def test_cp_refusals(fake: FakeSessions, address: str, tmp_path: Path) -> None:
    fake.add("files")
    missing = session_command(address, "cp", "files:none.txt", "-")
    assert (missing.returncode, missing.stderr) == (
        66,
        b"codebeaker: sessions/files:none.txt: no such file\n",
    )
    both_local = session_command(address, "cp", tmp_path / "a", tmp_path / "b")
    assert both_local.returncode == 2 and b"NAME:PATH" in both_local.stderr
    both_remote = session_command(address, "cp", "files:a", "files:b")
    assert both_remote.returncode == 2 and b"not both" in both_remote.stderr
    unreadable = session_command(address, "cp", tmp_path / "absent", "files:x")
    assert unreadable.returncode == 2 and b"cannot read file" in unreadable.stderr
    no_session = session_command(address, "cp", "-", "other:x", stdin=b"x")
    assert no_session.returncode == 66


def test_session_without_a_command_says_what_to_choose() -> None:
    done = subprocess.run(
        [*CLIENT_ONLY, "session"], capture_output=True, env=environment(), timeout=60, check=False
    )
    assert done.returncode == 2 and b"choose a command: create, list" in done.stderr
