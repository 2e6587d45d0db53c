"""The CLI as a subprocess and the Python SDK, against the real server and Docker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codebeaker.client import Client, ExecutionStatus, Finished, Output, Started
from tests.integration.conftest import CODEBEAKER, Server

pytestmark = pytest.mark.docker


def cli(server: Server, command: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CODEBEAKER, command, "--address", server.address, *args],
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_cli_runs_a_file_and_passes_the_exit_code(server: Server, tmp_path: Path) -> None:
    program = tmp_path / "prog.py"
    program.write_text("import sys\nprint('out')\nprint('err', file=sys.stderr)\nsys.exit(4)\n")
    done = cli(server, "run", str(program))
    assert done.returncode == 4
    assert done.stdout == b"out\n"
    assert done.stderr == b"err\n"


def test_cli_feeds_stdin_from_a_file(server: Server, tmp_path: Path) -> None:
    program = tmp_path / "echo.js"
    program.write_text("process.stdin.pipe(process.stdout);\n")
    data = tmp_path / "input.txt"
    data.write_bytes(b"line one\nline two\n")
    done = cli(server, "run", str(program), "--stdin", str(data))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"line one\nline two\n"


def test_cli_reports_a_time_limit(server: Server, tmp_path: Path) -> None:
    program = tmp_path / "spin.py"
    program.write_text("while True:\n    pass\n")
    done = cli(server, "run", str(program), "--wall-time", "1", "--cpu-time", "1")
    assert done.returncode == 124
    assert b"time limit exceeded" in done.stderr


def test_cli_unknown_language_is_a_usage_error(server: Server, tmp_path: Path) -> None:
    program = tmp_path / "prog.txt"
    program.write_text("hello\n")
    done = cli(server, "run", str(program), "-l", "klingon")
    assert done.returncode == 2
    assert b"unknown language" in done.stderr
    assert b"Traceback" not in done.stderr


def test_cli_lists_runtimes(server: Server) -> None:
    done = cli(server, "runtimes")
    assert done.returncode == 0
    assert b"python" in done.stdout and b"javascript" in done.stdout


def test_sdk_execute_and_stream(server: Server) -> None:
    with Client(server.address, timeout=60) as client:
        result = client.execute("py", "print(input()[::-1])", stdin="olleh\n")
        assert result.status is ExecutionStatus.OK
        assert result.stdout == b"hello\n"
        events = list(client.stream("js", "console.log(1); console.error(2)"))
    assert isinstance(events[0], Started)
    assert isinstance(events[-1], Finished)
    outputs = {e.stream.value: e.data for e in events if isinstance(e, Output)}
    assert outputs == {"stdout": b"1\n", "stderr": b"2\n"}
