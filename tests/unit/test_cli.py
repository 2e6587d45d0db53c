"""The `codebeaker` command, run as a subprocess against a canned service."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from tests.unit.fake_service import NOT_UTF8, Failure, FakeExecutionService, serve

COMMAND = [sys.executable, "-m", "codebeaker.client.cli"]


@dataclass
class FakeServer:
    service: FakeExecutionService
    address: str


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    service = FakeExecutionService()
    with serve(service) as address:
        yield FakeServer(service, address)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_bytes(b"print('hello world')\n")
    return path


def environment(**extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key != "CODEBEAKER_ADDRESS" and "proxy" not in key.lower()
    }
    env.update(extra)
    return env


def codebeaker(
    *args: str | Path, stdin: bytes = b"", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env or environment(),
        timeout=60,
        check=False,
    )


def assert_clean(stderr: bytes) -> None:
    assert b"Traceback" not in stderr


def test_run_passes_output_through_and_exits_with_the_programs_code(
    fake: FakeServer, program: Path
) -> None:
    fake.service.result = pb.ExecutionResult(status=pb.EXECUTION_STATUS_RUNTIME_ERROR, exit_code=3)
    done = codebeaker("run", program, "--address", fake.address)
    assert done.stdout == b"hello world\n"
    assert done.stderr == NOT_UTF8  # the program's stderr, and nothing of ours
    assert done.returncode == 3
    [spec] = fake.service.specs
    assert spec.language == "python"  # inferred from .py via ListRuntimes
    assert spec.source == program.read_bytes()


def test_ok_exits_zero(fake: FakeServer, program: Path) -> None:
    done = codebeaker("run", program, "--address", fake.address)
    assert done.returncode == 0
    assert done.stdout == b"hello world\n"


def test_explicit_language_skips_inference(fake: FakeServer, tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_bytes(b"console.log(1)")
    done = codebeaker("run", script, "-l", "js", "--address", fake.address)
    assert done.returncode == 0, done.stderr
    assert fake.service.specs[0].language == "js"
    assert fake.service.runtimes_calls == 0


def test_address_comes_from_the_environment(fake: FakeServer, program: Path) -> None:
    done = codebeaker("run", program, env=environment(CODEBEAKER_ADDRESS=fake.address))
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("result", "exit_code", "explanation"),
    [
        (
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED,
                wall_time=Duration(seconds=5),
                message="wall-clock limit of 5s reached",
            ),
            124,
            b"codebeaker: time limit exceeded (wall 5.00s, cpu 0.00s): "
            b"wall-clock limit of 5s reached\n",
        ),
        (
            pb.ExecutionResult(status=pb.EXECUTION_STATUS_SIGNALED, signal=9),
            128 + 9,
            b"codebeaker: killed by signal 9 (SIGKILL)\n",
        ),
        (
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, peak_memory_bytes=256 << 20
            ),
            125,
            b"codebeaker: memory limit exceeded (peak 256.0 MiB)\n",
        ),
        (
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED, stdout_truncated=True
            ),
            125,
            b"codebeaker: output limit exceeded (stdout cut)\n",
        ),
        (
            pb.ExecutionResult(status=pb.EXECUTION_STATUS_COMPILE_ERROR),
            126,
            b"codebeaker: compilation failed\n",
        ),
    ],
)
def test_verdicts_get_an_explanation_and_a_distinct_exit_code(
    fake: FakeServer, program: Path, result: pb.ExecutionResult, exit_code: int, explanation: bytes
) -> None:
    fake.service.result = result
    done = codebeaker("run", program, "--address", fake.address)
    assert done.returncode == exit_code
    assert done.stdout == b"hello world\n"
    assert done.stderr == NOT_UTF8 + explanation


def test_output_only_in_the_result_is_still_shown(fake: FakeServer, program: Path) -> None:
    fake.service.chunks = []
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_COMPILE_ERROR, stderr=b"main.c:1: error\n"
    )
    done = codebeaker("run", program, "--address", fake.address)
    assert done.returncode == 126
    assert done.stderr == b"main.c:1: error\ncodebeaker: compilation failed\n"


def test_stdin_from_a_file_and_from_our_own_stdin(
    fake: FakeServer, program: Path, tmp_path: Path
) -> None:
    feed = tmp_path / "input.bin"
    feed.write_bytes(NOT_UTF8)
    assert codebeaker("run", program, "--stdin", feed, "--address", fake.address).returncode == 0
    piped = codebeaker("run", program, "--stdin", "-", "--address", fake.address, stdin=b"42\n")
    assert piped.returncode == 0
    no_stdin = codebeaker("run", program, "--address", fake.address, stdin=b"ignored")
    assert no_stdin.returncode == 0
    assert [spec.stdin for spec in fake.service.specs] == [NOT_UTF8, b"42\n", b""]


def test_arguments_environment_and_limits_reach_the_server(fake: FakeServer, program: Path) -> None:
    done = codebeaker(
        "run",
        program,
        "--address",
        fake.address,
        "--arg",
        "first",
        "--env",
        "GREETING=hi=there",
        "--wall-time",
        "2.5",
        "--cpu-time",
        "500ms",
        "--memory",
        "256M",
        "--max-processes",
        "16",
        "--max-output",
        "1k",
        "--language-version",
        "3.11",
        "--",
        "-x",
        "--flag",
    )
    assert done.returncode == 0, done.stderr
    [spec] = fake.service.specs
    assert list(spec.args) == ["first", "-x", "--flag"]
    assert dict(spec.env) == {"GREETING": "hi=there"}
    assert spec.limits.wall_time == Duration(seconds=2, nanos=500_000_000)
    assert spec.limits.cpu_time == Duration(nanos=500_000_000)
    assert spec.limits.memory_bytes == 256 * 1024 * 1024
    assert spec.limits.max_processes == 16
    assert spec.limits.max_output_bytes == 1024
    assert spec.version == "3.11"


def test_unknown_language_exits_2_with_the_servers_message(fake: FakeServer, program: Path) -> None:
    done = codebeaker("run", program, "-l", "cobol", "--address", fake.address)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr == (
        b"codebeaker: invalid request: spec.language: unknown language 'cobol'; "
        b"known languages: javascript, python\n"
    )


def test_an_extension_no_runtime_uses_exits_2(fake: FakeServer, tmp_path: Path) -> None:
    source = tmp_path / "main.cob"
    source.write_bytes(b"DISPLAY 'HI'.")
    done = codebeaker("run", source, "--address", fake.address)
    assert done.returncode == 2
    assert b"cannot tell the language" in done.stderr
    assert b"python (.py)" in done.stderr
    assert b"-l/--language" in done.stderr
    assert fake.service.specs == []


def test_usage_errors_exit_2(fake: FakeServer, tmp_path: Path) -> None:
    missing = codebeaker("run", tmp_path / "nope.py", "-l", "python", "--address", fake.address)
    assert missing.returncode == 2
    assert b"codebeaker: cannot read program" in missing.stderr
    bad_size = codebeaker("run", tmp_path / "x.py", "--memory", "lots")
    assert bad_size.returncode == 2
    assert b"not a size" in bad_size.stderr
    no_command = codebeaker()
    assert no_command.returncode == 2
    for done in (missing, bad_size, no_command):
        assert_clean(done.stderr)


def test_unreachable_service_exits_69_without_a_traceback(program: Path) -> None:
    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{sock.getsockname()[1]}"
        for command in (["run", program, "-l", "python"], ["run", program], ["runtimes"]):
            done = codebeaker(*command, "--address", address)
            assert done.returncode == 69
            assert done.stderr.startswith(
                f"codebeaker: service unavailable at {address}: ".encode()
            )
            assert done.stderr.count(b"\n") == 1
            assert_clean(done.stderr)


def test_no_capacity_exits_75_with_the_retry_hint(fake: FakeServer, program: Path) -> None:
    fake.service.failure = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "all slots busy", "3")
    done = codebeaker("run", program, "-l", "python", "--address", fake.address)
    assert done.returncode == 75
    assert done.stderr == b"codebeaker: server busy: all slots busy; retry in 3s\n"


def test_deadline_exits_124(fake: FakeServer, program: Path) -> None:
    fake.service.hang = True
    done = codebeaker("run", program, "--timeout", "300ms", "--address", fake.address)
    assert done.returncode == 124
    assert done.stdout == b"hello world\n"
    assert b"codebeaker: deadline exceeded" in done.stderr
    assert_clean(done.stderr)


def test_ctrl_c_cancels_the_execution(fake: FakeServer, program: Path) -> None:
    fake.service.hang = True
    fake.service.chunks = [(pb.OUTPUT_STREAM_STDOUT, b"tick\n")]
    with subprocess.Popen(
        [*COMMAND, "run", str(program), "--address", fake.address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    ) as process:
        assert process.stdout is not None
        assert process.stderr is not None
        # The program's output reached us: the execution is under way.
        assert process.stdout.read(5) == b"tick\n"
        process.send_signal(signal.SIGINT)
        assert fake.service.caller_left.wait(30)
        assert process.wait(timeout=30) == 130
        assert_clean(process.stderr.read())


def test_runtimes_prints_a_table(fake: FakeServer) -> None:
    done = codebeaker("runtimes", "--address", fake.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "LANGUAGE    VERSION  ALIASES      FILE     COMPILED",
        "javascript  18.19.0  js, node     main.js  no",
        "python      3.11.2   py, python3  main.py  no",
    ]


def test_version() -> None:
    done = codebeaker("--version")
    assert done.returncode == 0
    assert done.stdout.startswith(b"codebeaker ")
