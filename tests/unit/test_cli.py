"""The `codebeaker` command, run as a subprocess against a canned service."""

from __future__ import annotations

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

from codebeaker.client._cli_files import safe_target, sent_name
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.cli_environment import environment
from tests.unit.fake_service import NOT_UTF8, Failure, ScriptedService, serve

COMMAND = [sys.executable, "-m", "codebeaker.client.cli"]


@dataclass
class FakeServer:
    service: ScriptedService
    address: str


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    service = ScriptedService()
    service.runtimes += [
        pb.Runtime(
            language="c",
            version="14.2.0",
            aliases=["gcc"],
            file_name="main.c",
            compiled=True,
            version_aliases=["14.2", "14"],
            is_default=True,
        ),
        pb.Runtime(
            language="c",
            version="12.2.0",
            aliases=["gcc"],
            file_name="main.c",
            compiled=True,
            version_aliases=["12.2", "12"],
        ),
        pb.Runtime(language="cpp", version="12", file_name="main.cpp", compiled=True),
    ]
    with serve(service) as address:
        yield FakeServer(service, address)


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_bytes(b"print('hello world')\n")
    return path


def codebeaker(
    *args: str | Path,
    stdin: bytes = b"",
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*COMMAND, *map(str, args)],
        input=stdin,
        capture_output=True,
        env=env or environment(),
        cwd=cwd,
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
    done = codebeaker("run", program, "-l", "no-such-language", "--address", fake.address)
    assert done.returncode == 2
    assert done.stdout == b""
    assert done.stderr == (
        b"codebeaker: invalid request: spec.language: unknown language 'no-such-language'; "
        b"known languages: c, cpp, javascript, python\n"
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


@pytest.mark.parametrize(
    ("code", "exit_code", "said"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, 77, "not authenticated at {address}: no key"),
        (grpc.StatusCode.PERMISSION_DENIED, 77, "permission denied: no key"),
        (grpc.StatusCode.NOT_FOUND, 66, "not found: no key"),
        (grpc.StatusCode.FAILED_PRECONDITION, 70, "not possible now: no key"),
    ],
)
def test_access_and_resource_errors_have_their_exit_codes(
    fake: FakeServer, program: Path, code: grpc.StatusCode, exit_code: int, said: str
) -> None:
    fake.service.failure = Failure(code, "no key")
    for command in (["run", program, "-l", "python"], ["runtimes"]):
        done = codebeaker(*command, "--address", fake.address)
        assert done.returncode == exit_code
        assert done.stderr == f"codebeaker: {said.format(address=fake.address)}\n".encode()


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
    # In the server's order (a language's default version first); "(default)" only
    # where a language has several.
    assert done.stdout.decode().splitlines() == [
        "LANGUAGE    VERSION           VERSION ALIASES  ALIASES      FILE      COMPILED  PACKAGES",
        "python      3.11.2                             py, python3  main.py   no        2",
        "javascript  18.19.0                            js, node     main.js   no",
        "c           14.2.0 (default)  14.2, 14         gcc          main.c    yes",
        "c           12.2.0            12.2, 12         gcc          main.c    yes",
        "cpp         12                                              main.cpp  yes",
    ]


def test_runtimes_packages_lists_each_package(fake: FakeServer) -> None:
    done = codebeaker("runtimes", "--packages", "--address", fake.address)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().splitlines() == [
        "LANGUAGE  PACKAGE  VERSION",
        "python    numpy    1.24.2",
        "python    pandas   1.5.3",
    ]


def test_version() -> None:
    done = codebeaker("--version")
    assert done.returncode == 0
    assert done.stdout.startswith(b"codebeaker ")


# --- several files, test cases, compile output, output files -------------------


def started() -> pb.ExecuteStreamResponse:
    return pb.ExecuteStreamResponse(
        started=pb.ExecutionStarted(execution_id="exec-1", language="c", version="12")
    )


def chunk(
    data: bytes,
    stream: pb.OutputStream.ValueType = pb.OUTPUT_STREAM_STDOUT,
    stage: pb.Stage.ValueType = pb.STAGE_RUN,
    case: int = 0,
) -> pb.ExecuteStreamResponse:
    return pb.ExecuteStreamResponse(
        output=pb.OutputChunk(stream=stream, data=data, stage=stage, test_case=case)
    )


def stage_ended(stage: pb.StageResult) -> pb.ExecuteStreamResponse:
    return pb.ExecuteStreamResponse(stage_result=stage)


def finished(result: pb.ExecutionResult) -> pb.ExecuteStreamResponse:
    return pb.ExecuteStreamResponse(result=result)


def case_result(
    number: int, status: pb.ExecutionStatus.ValueType, millis: int = 0, **fields: object
) -> pb.StageResult:
    return pb.StageResult(
        stage=pb.STAGE_RUN,
        test_case=number,
        status=status,
        wall_time=Duration(nanos=millis * 1_000_000),
        **fields,  # type: ignore[arg-type]
    )


COMPILED = pb.StageResult(stage=pb.STAGE_COMPILE, status=pb.EXECUTION_STATUS_OK)


def write(directory: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_several_files_go_by_their_paths_from_here_the_first_is_run(
    fake: FakeServer, tmp_path: Path
) -> None:
    here = tmp_path / "work"
    write(here, {"main.c": b'#include "inc/helper.h"\n', "inc/helper.h": b"\xff"})
    write(tmp_path / "shared", {"util.c": b"int util;\n"})
    done = codebeaker(
        "run",
        "main.c",
        "inc/helper.h",
        "../shared/util.c",
        "-l",
        "c",
        "--address",
        fake.address,
        cwd=here,
    )
    assert done.returncode == 0, done.stderr
    [spec] = fake.service.specs
    assert spec.source == b""
    assert [(f.path, f.content) for f in spec.files] == [
        ("main.c", b'#include "inc/helper.h"\n'),
        ("inc/helper.h", b"\xff"),
        ("util.c", b"int util;\n"),  # outside the current directory: its base name
    ]
    assert spec.entrypoint == "main.c"
    absolute = codebeaker(
        "run",
        here / "inc/helper.h",
        here / "main.c",
        "--address",
        fake.address,
        "-l",
        "c",
        cwd=here,
    )
    assert absolute.returncode == 0, absolute.stderr
    assert [f.path for f in fake.service.specs[1].files] == ["inc/helper.h", "main.c"]
    assert fake.service.specs[1].entrypoint == "inc/helper.h"


def test_files_after_options_are_files_and_program_arguments_follow_dashes(
    fake: FakeServer, tmp_path: Path
) -> None:
    write(tmp_path, {"main.c": b"", "helper.h": b"", "extra.h": b""})
    done = codebeaker(
        "run",
        "main.c",
        "-l",
        "c",
        "helper.h",
        "--address",
        fake.address,
        "extra.h",
        "--",
        "input.txt",
        "--flag",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [spec] = fake.service.specs
    assert [f.path for f in spec.files] == ["main.c", "helper.h", "extra.h"]
    assert list(spec.args) == ["input.txt", "--flag"]
    unknown = codebeaker("run", "main.c", "--bogus", "helper.h", cwd=tmp_path)
    assert unknown.returncode == 2
    assert b"unrecognized arguments: --bogus helper.h" in unknown.stderr


def test_a_single_file_is_sent_as_the_source_under_its_name(
    fake: FakeServer, program: Path
) -> None:
    done = codebeaker("run", program, "--address", fake.address)
    assert done.returncode == 0, done.stderr
    [spec] = fake.service.specs
    assert spec.source == program.read_bytes()
    assert list(spec.files) == [] and spec.entrypoint == program.name


def test_language_comes_from_the_first_files_extension(fake: FakeServer, tmp_path: Path) -> None:
    write(tmp_path, {"main.c": b"", "helper.h": b"", "prog.cc": b"", "x.CXX": b""})
    for first, language in (("main.c", "c"), ("prog.cc", "cpp"), ("x.CXX", "cpp")):
        done = codebeaker("run", first, "helper.h", "--address", fake.address, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert fake.service.specs[-1].language == language
    rust = codebeaker("run", "helper.h", "--address", fake.address, cwd=tmp_path)
    assert rust.returncode == 2
    assert b"cannot tell the language of helper.h" in rust.stderr


def test_two_files_sent_under_one_name_is_a_usage_error(fake: FakeServer, tmp_path: Path) -> None:
    write(tmp_path, {"a/main.c": b"", "b/main.c": b""})
    here = tmp_path / "work"
    here.mkdir()
    done = codebeaker(
        "run",
        tmp_path / "a/main.c",
        tmp_path / "b/main.c",
        "-l",
        "c",
        "--address",
        fake.address,
        cwd=here,
    )
    assert done.returncode == 2
    assert (
        done.stderr
        == (
            f"codebeaker: {tmp_path / 'a/main.c'} and {tmp_path / 'b/main.c'} "
            "would both be sent as main.c\n"
        ).encode()
    )
    assert fake.service.specs == []


def test_cases_get_one_line_each_and_a_summary(fake: FakeServer, tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "sum.c": b"...",
            "in1.txt": b"1 2\n",
            "out1.txt": b"3\n",
            "in2.txt": b"2 2\n",
            "out2.txt": b"5\n",
            "in3.txt": NOT_UTF8,
        },
    )
    cases = [
        case_result(1, pb.EXECUTION_STATUS_ACCEPTED, 12, message="output matches"),
        case_result(2, pb.EXECUTION_STATUS_WRONG_ANSWER, 4, message="output differs at line 1"),
        case_result(3, pb.EXECUTION_STATUS_OK, message="exited with code 0"),
    ]
    fake.service.script = [
        started(),
        chunk(b"cc: warning\n", pb.OUTPUT_STREAM_STDERR, pb.STAGE_COMPILE),
        stage_ended(COMPILED),
        chunk(b"3\n", case=1),
        stage_ended(cases[0]),
        chunk(b"4\n", case=2),
        chunk(b"debug\n", pb.OUTPUT_STREAM_STDERR, case=2),
        stage_ended(cases[1]),
        chunk(b"", case=3),
        stage_ended(cases[2]),
        finished(
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_WRONG_ANSWER,
                compile=COMPILED,
                test_cases=cases,
                test_cases_passed=2,
                message="2 of 3 test cases passed; case 2: output differs at line 1",
            )
        ),
    ]
    arguments = [
        "run",
        "sum.c",
        "--case",
        "in1.txt:out1.txt",
        "--case",
        "in2.txt:out2.txt",
        "--case",
        "in3.txt",
        "--address",
        fake.address,
    ]
    done = codebeaker(*arguments, cwd=tmp_path)
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr == (
        b"cc: warning\n"
        b"case 1: ACCEPTED (0.012 s)\n"
        b"case 2: WRONG_ANSWER (0.004 s) output differs at line 1\n"
        b"case 3: OK (0.000 s)\n"
        b"2/3 passed\n"
    )
    spec = fake.service.specs[0]
    assert spec.language == "c" and spec.stdin == b""
    assert [(c.stdin, c.comparison) for c in spec.test_cases] == [
        (b"1 2\n", pb.COMPARISON_EXACT),
        (b"2 2\n", pb.COMPARISON_EXACT),
        (NOT_UTF8, pb.COMPARISON_EXACT),
    ]
    assert [c.expected_stdout for c in spec.test_cases[:2]] == [b"3\n", b"5\n"]
    assert not spec.test_cases[2].HasField("expected_stdout")

    shown = codebeaker(
        *arguments, "--show-output", "--compare", "trailing-whitespace", cwd=tmp_path
    )
    assert shown.returncode == 1
    assert shown.stdout == b"3\n4\n"
    assert shown.stderr == (
        b"cc: warning\n"
        b"case 1: ACCEPTED (0.012 s)\n"
        b"debug\n"
        b"case 2: WRONG_ANSWER (0.004 s) output differs at line 1\n"
        b"case 3: OK (0.000 s)\n"
        b"2/3 passed\n"
    )
    assert {c.comparison for c in fake.service.specs[1].test_cases} == {
        pb.COMPARISON_IGNORE_TRAILING_WHITESPACE
    }


def test_all_cases_passing_exits_0(fake: FakeServer, tmp_path: Path) -> None:
    write(tmp_path, {"main.py": b"", "in.txt": b"x", "out.txt": b"x"})
    accepted = case_result(1, pb.EXECUTION_STATUS_ACCEPTED, 1)
    fake.service.script = [
        started(),
        stage_ended(accepted),
        finished(
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_ACCEPTED, test_cases=[accepted], test_cases_passed=1
            )
        ),
    ]
    done = codebeaker(
        "run", "main.py", "--case", "in.txt:out.txt", "--address", fake.address, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == b"case 1: ACCEPTED (0.001 s)\n1/1 passed\n"


def test_case_lines_come_from_the_result_when_no_stage_events_arrived(
    fake: FakeServer, tmp_path: Path
) -> None:
    write(tmp_path, {"main.py": b"", "in.txt": b"x"})
    fake.service.chunks = []
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_RUNTIME_ERROR,
        exit_code=1,
        test_cases=[
            case_result(1, pb.EXECUTION_STATUS_RUNTIME_ERROR, 2, stdout=b"partial\n"),
        ],
    )
    done = codebeaker(
        "run",
        "main.py",
        "--case",
        "in.txt",
        "--show-output",
        "--address",
        fake.address,
        cwd=tmp_path,
    )
    assert done.returncode == 1
    assert done.stdout == b"partial\n"
    assert done.stderr == b"case 1: RUNTIME_ERROR (0.002 s)\n0/1 passed\n"


def test_case_usage_errors_exit_2(fake: FakeServer, program: Path, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_bytes(b"")
    bad = codebeaker("run", program, "--case", ":out.txt", "--address", fake.address)
    assert bad.returncode == 2
    assert b"expected IN or IN:OUT, got ':out.txt'" in bad.stderr
    both = codebeaker(
        "run",
        program,
        "--case",
        tmp_path / "in.txt",
        "--stdin",
        tmp_path / "in.txt",
        "--address",
        fake.address,
    )
    assert both.returncode == 2
    assert b"--stdin cannot be used with --case" in both.stderr
    missing = codebeaker(
        "run",
        program,
        "--case",
        f"{tmp_path / 'in.txt'}:{tmp_path / 'nope'}",
        "--address",
        fake.address,
    )
    assert missing.returncode == 2
    assert b"cannot read expected output" in missing.stderr
    assert fake.service.specs == []
    for done in (bad, both, missing):
        assert_clean(done.stderr)


COMPILE_FAILED = pb.StageResult(
    stage=pb.STAGE_COMPILE,
    status=pb.EXECUTION_STATUS_COMPILE_ERROR,
    exit_code=1,
    message="compiler exited with code 1",
)


@pytest.mark.parametrize("with_cases", [False, True], ids=["plain", "cases"])
def test_a_compile_error_shows_the_compiler_on_stderr_and_exits_126(
    fake: FakeServer, tmp_path: Path, with_cases: bool
) -> None:
    write(tmp_path, {"main.c": b"int main(", "in.txt": b""})
    fake.service.script = [
        started(),
        chunk(b"In function main:\n", pb.OUTPUT_STREAM_STDOUT, pb.STAGE_COMPILE),
        chunk(b"main.c:1: error: expected ';'\n", pb.OUTPUT_STREAM_STDERR, pb.STAGE_COMPILE),
        stage_ended(COMPILE_FAILED),
        finished(
            pb.ExecutionResult(
                status=pb.EXECUTION_STATUS_COMPILE_ERROR,
                compile=COMPILE_FAILED,
                message="compilation failed: compiler exited with code 1\nmain.c:1: error",
            )
        ),
    ]
    cases = ["--case", "in.txt"] if with_cases else []
    done = codebeaker("run", "main.c", *cases, "--address", fake.address, cwd=tmp_path)
    assert done.returncode == 126
    assert done.stdout == b""
    assert done.stderr == (
        b"In function main:\n"
        b"main.c:1: error: expected ';'\n"
        b"codebeaker: compilation failed: compiler exited with code 1\n"
    )


def test_compiler_output_only_in_the_result_is_shown_on_stderr(
    fake: FakeServer, tmp_path: Path
) -> None:
    write(tmp_path, {"main.c": b"int main("})
    failed = pb.StageResult()
    failed.CopyFrom(COMPILE_FAILED)
    failed.stdout = b"compiler says\n"
    failed.stderr = b"main.c:1: error\n"
    fake.service.chunks = []
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_COMPILE_ERROR, compile=failed
    )
    done = codebeaker("run", "main.c", "--address", fake.address, cwd=tmp_path)
    assert done.returncode == 126
    assert done.stdout == b""
    assert done.stderr == (
        b"compiler says\nmain.c:1: error\n"
        b"codebeaker: compilation failed: compiler exited with code 1\n"
    )


def test_compile_time_sets_the_compile_limits(fake: FakeServer, program: Path) -> None:
    assert codebeaker("run", program, "--address", fake.address).returncode == 0
    done = codebeaker("run", program, "--compile-time", "2.5", "--address", fake.address)
    assert done.returncode == 0, done.stderr
    without, with_time = fake.service.specs
    assert not without.HasField("compile_limits")
    assert with_time.compile_limits.wall_time == Duration(seconds=2, nanos=500_000_000)
    assert with_time.compile_limits.cpu_time == Duration(seconds=2, nanos=500_000_000)
    assert with_time.compile_limits.memory_bytes == 0
    assert not with_time.HasField("limits") or with_time.limits == pb.ResourceLimits()


def output_file(
    path: str, status: pb.OutputFileStatus.ValueType, content: bytes = b"", **fields: object
) -> pb.OutputFile:
    return pb.OutputFile(path=path, status=status, content=content, **fields)  # type: ignore[arg-type]


def test_output_files_are_written_under_the_output_dir(
    fake: FakeServer, program: Path, tmp_path: Path
) -> None:
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_OK,
        files=[
            output_file("result.txt", pb.OUTPUT_FILE_STATUS_OK, NOT_UTF8, size=len(NOT_UTF8)),
            output_file("logs/a.log", pb.OUTPUT_FILE_STATUS_OK, b"a", size=1),
            output_file(
                "big.bin",
                pb.OUTPUT_FILE_STATUS_TRUNCATED,
                b"z" * 1024,
                size=3 << 20,
                reason="larger than the cap",
            ),
            output_file("gone.txt", pb.OUTPUT_FILE_STATUS_MISSING, reason="no such file"),
            output_file(
                "link.txt",
                pb.OUTPUT_FILE_STATUS_NOT_REGULAR,
                reason="not a regular file: a symbolic link",
            ),
        ],
    )
    out = tmp_path / "out"
    done = codebeaker(
        "run",
        program,
        "--output",
        "result.txt",
        "--output",
        "logs/*.log",
        "--output",
        "big.bin",
        "--output",
        "gone.txt",
        "--output",
        "link.txt",
        "--output-dir",
        out,
        "--address",
        fake.address,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"hello world\n"
    assert list(fake.service.specs[0].output_files) == [
        "result.txt",
        "logs/*.log",
        "big.bin",
        "gone.txt",
        "link.txt",
    ]
    assert (out / "result.txt").read_bytes() == NOT_UTF8
    assert (out / "logs/a.log").read_bytes() == b"a"
    assert (out / "big.bin").read_bytes() == b"z" * 1024
    assert sorted(p.name for p in out.iterdir()) == ["big.bin", "logs", "result.txt"]
    assert done.stderr == NOT_UTF8 + (
        b"codebeaker: output file big.bin: TRUNCATED: wrote the first 1.0 KiB of 3.0 MiB "
        b"(larger than the cap)\n"
        b"codebeaker: output file gone.txt: MISSING (no such file)\n"
        b"codebeaker: output file link.txt: NOT_REGULAR (not a regular file: a symbolic link)\n"
    )


def test_output_files_never_land_outside_the_output_dir(
    fake: FakeServer, program: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    elsewhere = tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "via").symlink_to(elsewhere)
    hostile = ["../escape.txt", "/tmp/absolute.txt", "a/../../up.txt", "via/x.txt", ".", ""]
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_OK,
        files=[output_file(path, pb.OUTPUT_FILE_STATUS_OK, b"bad") for path in hostile]
        + [output_file("a/../fine.txt", pb.OUTPUT_FILE_STATUS_OK, b"good")],
    )
    done = codebeaker(
        "run", program, "--output", "*", "--output-dir", out, "--address", fake.address
    )
    assert done.returncode == 73
    assert (out / "fine.txt").read_bytes() == b"good"
    assert list(elsewhere.iterdir()) == []
    assert not (tmp_path / "escape.txt").exists() and not (tmp_path / "up.txt").exists()
    assert not Path("/tmp/absolute.txt").exists()
    assert done.stderr.count(b": refused: outside ") == len(hostile)
    assert_clean(done.stderr)
    # A failed program keeps its own exit code; the refusal is still reported.
    fake.service.result.status = pb.EXECUTION_STATUS_RUNTIME_ERROR
    fake.service.result.exit_code = 3
    failed = codebeaker(
        "run", program, "--output", "*", "--output-dir", out, "--address", fake.address
    )
    assert failed.returncode == 3
    assert b"refused" in failed.stderr


def test_output_files_of_each_case_go_to_their_own_folder(fake: FakeServer, tmp_path: Path) -> None:
    write(tmp_path, {"main.py": b"", "in.txt": b""})
    cases = [
        case_result(
            n,
            pb.EXECUTION_STATUS_OK,
            files=[output_file("r.txt", pb.OUTPUT_FILE_STATUS_OK, f"{n}".encode())],
        )
        for n in (1, 2)
    ]
    fake.service.chunks = []
    fake.service.result = pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_OK, test_cases=cases, test_cases_passed=2
    )
    done = codebeaker(
        "run",
        "main.py",
        "--case",
        "in.txt",
        "--case",
        "in.txt",
        "--output",
        "r.txt",
        "--output-dir",
        "results",
        "--address",
        fake.address,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results/case-1/r.txt").read_bytes() == b"1"
    assert (tmp_path / "results/case-2/r.txt").read_bytes() == b"2"


def test_sent_names_and_safe_targets(tmp_path: Path) -> None:
    assert sent_name(tmp_path / "src/main.c", tmp_path) == "src/main.c"
    assert sent_name(tmp_path / "src/../main.c", tmp_path) == "main.c"
    assert sent_name(tmp_path.parent / "other/lib.c", tmp_path) == "lib.c"
    assert safe_target(tmp_path, "a/./b//c.txt") == tmp_path / "a/b/c.txt"
    for path in ("../x", "/etc/passwd", "a/../../x", "..", ".", "", "nul\x00"):
        assert safe_target(tmp_path, path) is None, path
