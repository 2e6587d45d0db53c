"""The CLI as a subprocess and the Python SDK, against the real server and Docker."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codebeaker.client import (
    AsyncClient,
    Client,
    ExecutionStatus,
    Finished,
    Output,
    OutputFileStatus,
    Stage,
    StageFinished,
    Started,
    TestCase,
)
from tests.integration.conftest import CODEBEAKER, Server

pytestmark = pytest.mark.docker

C_SUM = """#include <stdio.h>
int main(void) {
    long a, b;
    if (scanf("%ld %ld", &a, &b) != 2) return 2;
    printf("%ld\\n", a + b);
    return 0;
}
"""


def cli(
    server: Server, command: str, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CODEBEAKER, command, "--address", server.address, *args],
        capture_output=True,
        cwd=cwd,
        timeout=120,
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


def test_cli_runs_a_two_file_c_program(server: Server, tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "helper.h"\n'
        'int main(int argc, char **argv) { printf("%d %s\\n", twice(21), argv[1]); return 0; }\n'
    )
    (tmp_path / "helper.h").write_text("static int twice(int x) { return 2 * x; }\n")
    done = cli(server, "run", "main.c", "helper.h", "-l", "c", "--", "arg", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"42 arg\n"


def test_cli_judges_test_cases_and_reports_a_wrong_answer(server: Server, tmp_path: Path) -> None:
    (tmp_path / "sum.c").write_text(C_SUM)
    for name, content in {
        "in1.txt": "1 2\n",
        "out1.txt": "3\n",
        "in2.txt": "2 2\n",
        "out2.txt": "5\n",
    }.items():
        (tmp_path / name).write_text(content)
    done = cli(
        server,
        "run",
        "sum.c",
        "--case",
        "in1.txt:out1.txt",
        "--case",
        "in2.txt:out2.txt",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout == b""
    lines = done.stderr.decode().splitlines()
    assert lines[-3].startswith("case 1: ACCEPTED (")
    assert lines[-2].startswith("case 2: WRONG_ANSWER (")
    assert lines[-2].endswith(" s) output differs at line 1")
    assert lines[-1] == "1/2 passed"
    shown = cli(server, "run", "sum.c", "--case", "in2.txt", "--show-output", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == b"4\n"
    assert shown.stderr.decode().splitlines()[-1] == "1/1 passed"


def test_cli_copies_output_files_back(server: Server, tmp_path: Path) -> None:
    program = tmp_path / "write.py"
    program.write_text("open('result.txt', 'w').write('answer 42\\n')\nprint('done')\n")
    done = cli(
        server,
        "run",
        str(program),
        "--output",
        "result.txt",
        "--output",
        "missing.txt",
        "--output-dir",
        str(tmp_path / "out"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"done\n"
    assert (tmp_path / "out/result.txt").read_bytes() == b"answer 42\n"
    assert done.stderr == b"codebeaker: output file missing.txt: MISSING (no such file)\n"


def test_cli_compile_error_exits_126_with_the_compilers_output(
    server: Server, tmp_path: Path
) -> None:
    (tmp_path / "broken.c").write_text('int main(void) { puts("x") return 0; }\n')
    done = cli(server, "run", "broken.c", "--compile-time", "20", cwd=tmp_path)
    assert done.returncode == 126
    assert done.stdout == b""
    assert b"error" in done.stderr
    assert done.stderr.decode().splitlines()[-1].startswith("codebeaker: compilation failed")


def test_sdk_judges_test_cases_and_returns_files(server: Server) -> None:
    program = "import sys\nx = int(input())\nopen('sq.txt', 'w').write(str(x * x))\nprint(x * 2)\n"
    with Client(server.address, timeout=120) as client:
        result = client.execute(
            "python",
            program,
            test_cases=[TestCase("2\n", "4\n"), TestCase("3\n", "7\n"), TestCase("oops")],
            output_files=["sq.txt"],
        )
    assert [case.status for case in result.test_cases] == [
        ExecutionStatus.ACCEPTED,
        ExecutionStatus.WRONG_ANSWER,
        ExecutionStatus.RUNTIME_ERROR,
    ]
    assert result.status is ExecutionStatus.WRONG_ANSWER and not result.ok
    assert result.test_cases_passed == 1
    assert result.compile is None
    assert result.test_cases[1].stdout == b"6\n"
    assert result.test_cases[1].message == "output differs at line 1"
    assert b"ValueError" in result.test_cases[2].stderr
    first = result.test_cases[0].files
    assert [(f.path, f.status, f.content) for f in first] == [("sq.txt", OutputFileStatus.OK, b"4")]
    assert result.test_cases[2].files[0].status is OutputFileStatus.MISSING


def test_sdk_stream_reports_the_compile_and_each_case(server: Server) -> None:
    source = C_SUM.replace("int main", "#warning compiling now\nint main")
    cases = [TestCase("1 2\n", "3\n"), TestCase("2 2\n", "5\n")]
    with Client(server.address, timeout=120) as client:
        events = list(client.stream("c", source, test_cases=cases))
    assert isinstance(events[0], Started)
    assert isinstance(events[-1], Finished)
    stages = [e.result for e in events if isinstance(e, StageFinished)]
    assert [(s.stage, s.test_case, s.status) for s in stages] == [
        (Stage.COMPILE, 0, ExecutionStatus.OK),
        (Stage.RUN, 1, ExecutionStatus.ACCEPTED),
        (Stage.RUN, 2, ExecutionStatus.WRONG_ANSWER),
    ]
    outputs = [e for e in events if isinstance(e, Output)]
    assert b"compiling now" in b"".join(o.data for o in outputs if o.stage is Stage.COMPILE)
    by_case = {
        n: b"".join(o.data for o in outputs if o.stage is Stage.RUN and o.test_case == n)
        for n in (1, 2)
    }
    assert by_case == {1: b"3\n", 2: b"4\n"}
    final = events[-1].result
    assert final.status is ExecutionStatus.WRONG_ANSWER
    assert final.test_cases_passed == 1
    assert final.compile is not None and final.compile.ok


async def test_async_sdk_compile_error(server: Server) -> None:
    async with AsyncClient(server.address, timeout=120) as client:
        result = await client.execute("c", "int main(void) { return }\n")
        events = [e async for e in client.stream("c", "int main(void) { return }\n")]
    assert result.status is ExecutionStatus.COMPILE_ERROR
    assert result.compile is not None and b"error" in result.compile.stderr
    assert [type(e).__name__ for e in events if not isinstance(e, Output)] == [
        "Started",
        "StageFinished",
        "Finished",
    ]
    compiler = b"".join(e.data for e in events if isinstance(e, Output))
    assert b"error" in compiler
    assert all(e.stage is Stage.COMPILE for e in events if isinstance(e, Output))
