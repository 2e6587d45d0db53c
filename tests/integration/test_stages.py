"""Compile stage, compile once / run many test cases, and files out, on real sandboxes."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import run

pytestmark = pytest.mark.docker

C_SUM = b"""#include <stdio.h>
int main(void) {
    long a, b;
    if (scanf("%ld %ld", &a, &b) != 2) return 2;
    printf("%ld\\n", a + b);
    return 0;
}
"""


def seconds(value: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(int(value * 1e9))
    return duration


def stream(
    stub: pb_grpc.ExecutionServiceStub, spec: pb.ExecutionSpec
) -> list[pb.ExecuteStreamResponse]:
    return list(stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=120))


def test_compile_error_reports_the_compiler_and_runs_nothing(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    result = run(stub, "c", 'int main(void) { puts("x") return 0; }\n')
    assert result.status == pb.EXECUTION_STATUS_COMPILE_ERROR
    assert result.compile.stage == pb.STAGE_COMPILE
    assert result.compile.status == pb.EXECUTION_STATUS_COMPILE_ERROR
    assert result.compile.exit_code == 1
    assert b"error" in result.compile.stderr
    assert "compilation failed" in result.message and "error" in result.message
    assert result.stdout == b"" and not result.test_cases


def test_compiled_program_runs_after_its_compile(stub: pb_grpc.ExecutionServiceStub) -> None:
    result = run(stub, "c", C_SUM, stdin=b"2 40\n")
    assert result.status == pb.EXECUTION_STATUS_OK, result.message
    assert result.stdout == b"42\n"
    assert result.compile.status == pb.EXECUTION_STATUS_OK
    assert result.compile.wall_time.ToNanoseconds() > 0


# Each level includes the file twice: 2^200 inclusions before the depth limit.
SELF_INCLUDE = "#include __FILE__\n#include __FILE__\nint main(void) { return 0; }\n"
# 2^32 tokens from 33 macros.
MACRO_BOMB = (
    "#define A0 x\n"
    + "".join(f"#define A{n} A{n - 1} A{n - 1}\n" for n in range(1, 33))
    + "int main(void) { A32; }\n"
)
COMPILE_LIMITS = {pb.LIMIT_WALL_TIME, pb.LIMIT_CPU_TIME, pb.LIMIT_MEMORY, pb.LIMIT_OUTPUT}


@pytest.mark.parametrize("bomb", [SELF_INCLUDE, MACRO_BOMB], ids=["self-include", "macros"])
def test_compile_bomb_is_stopped_by_a_compile_limit(
    stub: pb_grpc.ExecutionServiceStub, bomb: str
) -> None:
    limits = pb.ResourceLimits(wall_time=seconds(3), cpu_time=seconds(3))
    result = run(stub, "c", bomb, compile_limits=limits)
    assert result.status == pb.EXECUTION_STATUS_COMPILE_ERROR
    assert result.compile.limit_exceeded in COMPILE_LIMITS, result.compile.message
    assert result.limit_exceeded == result.compile.limit_exceeded
    assert result.compile.wall_time.ToNanoseconds() < 5e9
    assert not result.test_cases and result.stdout == b""


def test_compile_limits_that_belong_to_the_run_are_refused(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        run(stub, "c", C_SUM, compile_limits=pb.ResourceLimits(max_processes=3))
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "spec.compile_limits.max_processes" in (error.details() or "")


HOG = b"""#include <stdlib.h>
#include <string.h>
#include <stdio.h>
int main(void) {
    char *p = malloc(200 << 20);
    memset(p, 1, 200 << 20);
    long sum = 0;  /* read it back, or the compiler drops the allocation */
    for (long i = 0; i < (200 << 20); i += 4096) sum += p[i];
    printf("allocated %ld\\n", sum);
    return 0;
}
"""


def test_the_compile_has_a_memory_limit_of_its_own(
    stub: pb_grpc.ExecutionServiceStub, runtime: str
) -> None:
    # A 32 MiB compile limit stops g++ compiling <iostream>-heavy code, while
    # the run keeps 256 MiB; and a 512 MiB compile leaves the run at 64 MiB,
    # where a 200 MiB allocation is the kernel's OOM kill. (At 40-48 MiB this
    # kernel reclaims g++'s own pages over and over for minutes before it
    # OOM-kills, so the compile ran into its wall limit; at 32 MiB the kill
    # comes in under a second.)
    tight = pb.ResourceLimits(memory_bytes=32 << 20)
    heavy = (
        b'#include <bits/stdc++.h>\nint main() { std::cout << std::regex("a+").mark_count(); }\n'
    )
    if runtime == "runsc":
        with pytest.raises(grpc.RpcError) as caught:
            run(stub, "cpp", heavy, compile_limits=tight)
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "gVisor" in (error.details() or "")
        return
    starved = run(stub, "cpp", heavy, compile_limits=tight)
    assert starved.status == pb.EXECUTION_STATUS_COMPILE_ERROR
    assert starved.compile.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, starved.compile
    roomy = pb.ResourceLimits(memory_bytes=512 << 20)
    result = run(
        stub, "c", HOG, compile_limits=roomy, limits=pb.ResourceLimits(memory_bytes=64 << 20)
    )
    assert result.compile.status == pb.EXECUTION_STATUS_OK
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, result
    # And the other way: a small compile, then the run's larger limit.
    small = pb.ResourceLimits(memory_bytes=128 << 20)
    raised = run(
        stub, "c", HOG, compile_limits=small, limits=pb.ResourceLimits(memory_bytes=384 << 20)
    )
    assert raised.status == pb.EXECUTION_STATUS_OK, raised
    assert raised.stdout.startswith(b"allocated ")


def judge_cases(wrong: int) -> list[pb.TestCase]:
    cases = []
    for number in range(1, 21):
        expected = f"{number * 3}\n" if number != wrong else "0\n"
        cases.append(
            pb.TestCase(
                stdin=f"{number} {number * 2}\n".encode(), expected_stdout=expected.encode()
            )
        )
    return cases


def test_twenty_case_judge_compiles_once_and_finds_the_wrong_answer(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    result = run(stub, "c", C_SUM, test_cases=judge_cases(wrong=7))
    assert result.compile.status == pb.EXECUTION_STATUS_OK
    assert [case.test_case for case in result.test_cases] == list(range(1, 21))
    statuses = [case.status for case in result.test_cases]
    assert statuses[6] == pb.EXECUTION_STATUS_WRONG_ANSWER
    assert statuses[:6] + statuses[7:] == [pb.EXECUTION_STATUS_ACCEPTED] * 19
    assert result.test_cases[6].stdout == b"21\n"
    assert result.test_cases[6].message == "output differs at line 1"
    assert result.status == pb.EXECUTION_STATUS_WRONG_ANSWER
    assert result.test_cases_passed == 19
    assert "case 7" in result.message


def test_all_cases_accepted_and_unjudged_cases_are_ok(stub: pb_grpc.ExecutionServiceStub) -> None:
    cases = [
        pb.TestCase(
            stdin=b"1 1\n",
            expected_stdout=b"2  \n\n",
            comparison=pb.COMPARISON_IGNORE_TRAILING_WHITESPACE,
        ),
        pb.TestCase(stdin=b"5 5\n", expected_stdout=b"10\n"),
        pb.TestCase(stdin=b"oops\n"),
    ]
    result = run(
        stub, "python", "a, b = map(int, input().split())\nprint(a + b)\n", test_cases=cases
    )
    statuses = [case.status for case in result.test_cases]
    assert statuses == [
        pb.EXECUTION_STATUS_ACCEPTED,
        pb.EXECUTION_STATUS_ACCEPTED,
        pb.EXECUTION_STATUS_RUNTIME_ERROR,
    ]
    assert b"ValueError" in result.test_cases[2].stderr
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR
    assert result.test_cases_passed == 2
    assert not result.HasField("compile")


def test_every_case_starts_from_the_same_files(stub: pb_grpc.ExecutionServiceStub) -> None:
    program = (
        "import os\n"
        "for path in ('state.txt', '/tmp/state.txt', 'sub/state.txt'):\n"
        "    print(path, os.path.exists(path))\n"
        "os.makedirs('sub', exist_ok=True)\n"
        "for path in ('state.txt', '/tmp/state.txt', 'sub/state.txt'):\n"
        "    open(path, 'a').write('x')\n"
        "os.chmod('sub', 0o500)\n"
        "os.remove('main.py')\n"
    )
    expected = b"state.txt False\n/tmp/state.txt False\nsub/state.txt False\n"
    cases = [pb.TestCase(expected_stdout=expected) for _ in range(3)]
    result = run(stub, "python", program, test_cases=cases)
    assert [case.status for case in result.test_cases] == [pb.EXECUTION_STATUS_ACCEPTED] * 3, [
        (case.message, case.stdout, case.stderr) for case in result.test_cases
    ]


def test_output_files_only_regular_ones_under_the_caps(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    program = (
        "import os\n"
        "open('result.txt', 'w').write('answer 42\\n')\n"
        "os.makedirs('logs')\n"
        "open('logs/a.log', 'w').write('a')\n"
        "open('logs/b.log', 'w').write('b')\n"
        "os.symlink('/etc/passwd', 'link.txt')\n"
        "os.mkfifo('pipe')\n"
        "open('big.bin', 'wb').write(b'z' * (3 << 20))\n"
    )
    wanted = ["result.txt", "logs/*.log", "link.txt", "pipe", "big.bin", "missing.txt", "logs"]
    result = run(stub, "python", program, output_files=wanted)
    assert result.status == pb.EXECUTION_STATUS_OK, result.stderr
    files = {f.path: f for f in result.files}
    assert set(files) == {
        "result.txt",
        "logs/a.log",
        "logs/b.log",
        "link.txt",
        "pipe",
        "big.bin",
        "missing.txt",
        "logs",
    }
    assert files["result.txt"].status == pb.OUTPUT_FILE_STATUS_OK
    assert files["result.txt"].content == b"answer 42\n"
    assert files["logs/a.log"].content == b"a" and files["logs/b.log"].content == b"b"
    link = files["link.txt"]
    assert link.status == pb.OUTPUT_FILE_STATUS_NOT_REGULAR
    assert link.content == b"" and "symbolic link" in link.reason
    assert files["pipe"].status == pb.OUTPUT_FILE_STATUS_NOT_REGULAR
    assert "FIFO" in files["pipe"].reason
    assert files["logs"].status == pb.OUTPUT_FILE_STATUS_NOT_REGULAR
    big = files["big.bin"]
    assert big.status == pb.OUTPUT_FILE_STATUS_TRUNCATED
    assert big.size == 3 << 20 and big.content == b"z" * (1 << 20)
    assert files["missing.txt"].status == pb.OUTPUT_FILE_STATUS_MISSING


def test_stream_marks_compile_output_and_test_cases(stub: pb_grpc.ExecutionServiceStub) -> None:
    source = C_SUM.replace(b"int main", b"#warning compiling now\nint main")
    cases = [
        pb.TestCase(stdin=b"1 2\n", expected_stdout=b"3\n"),
        pb.TestCase(stdin=b"2 2\n", expected_stdout=b"5\n"),
    ]
    spec = pb.ExecutionSpec(language="c", source=source, test_cases=cases)
    events = stream(stub, spec)
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    chunks = [e.output for e in events if e.WhichOneof("event") == "output"]
    compile_text = b"".join(c.data for c in chunks if c.stage == pb.STAGE_COMPILE)
    assert b"compiling now" in compile_text
    by_case = {
        n: b"".join(c.data for c in chunks if c.stage == pb.STAGE_RUN and c.test_case == n)
        for n in (1, 2)
    }
    assert by_case == {1: b"3\n", 2: b"4\n"}
    stages = [e.stage_result for e in events if e.WhichOneof("event") == "stage_result"]
    assert [(s.stage, s.test_case) for s in stages] == [
        (pb.STAGE_COMPILE, 0),
        (pb.STAGE_RUN, 1),
        (pb.STAGE_RUN, 2),
    ]
    assert [s.status for s in stages[1:]] == [
        pb.EXECUTION_STATUS_ACCEPTED,
        pb.EXECUTION_STATUS_WRONG_ANSWER,
    ]
    final = events[-1].result
    assert final.status == pb.EXECUTION_STATUS_WRONG_ANSWER
    assert final.test_cases_passed == 1
    assert final.compile.status == pb.EXECUTION_STATUS_OK


def test_cases_that_leave_stdin_unread_do_not_shift_the_next_ones(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    # Each case reads one line and leaves the rest (1 MiB for the first two)
    # unread; the next case's stdin must still start where it should, and
    # each case gets its own output files.
    program = (
        "import sys\n"
        "line = sys.stdin.readline()\n"
        "open('out.txt', 'w').write(line)\n"
        "print(line.strip()[:20])\n"
    )
    big = b"x" * (1 << 20)
    cases = [
        pb.TestCase(stdin=b"first\n" + big, expected_stdout=b"first\n"),
        pb.TestCase(stdin=b"second\n" + big, expected_stdout=b"second\n"),
        pb.TestCase(stdin=b"third\n", expected_stdout=b"third\n"),
    ]
    result = run(stub, "python", program, test_cases=cases, output_files=["out.txt"])
    assert [c.status for c in result.test_cases] == [pb.EXECUTION_STATUS_ACCEPTED] * 3, [
        (c.stdout, c.stderr) for c in result.test_cases
    ]
    assert [c.files[0].content for c in result.test_cases] == [b"first\n", b"second\n", b"third\n"]
    assert not result.files  # with test cases, files are per case
