"""Output: huge lines, endless lines, stderr floods, /proc/self/fd/1, raw bytes,
closed streams, and output that imitates the supervisor's or Docker's framing.

Output is data: bytes come back exactly as written, cut at exactly the cap;
a closed stdout is not an exit; nothing the program writes can pass for a frame.
"""

from __future__ import annotations

import itertools
import time

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import LANGUAGES, Sandbox, limits
from tests.security.programs import BINARY, FORGED_FRAMES, PROGRAMS

pytestmark = pytest.mark.docker
CAP = 100_000


def endless_lines(size: int) -> bytes:
    text = b"".join(f"{i}\n".encode() for i in itertools.islice(itertools.count(), size))
    return text[:size]


FLOODS = {  # program: (stdout, stderr) expected, each cut at exactly CAP
    "long_line": (b"a" * CAP, b""),
    "endless_lines": (endless_lines(CAP), b""),
    "stderr_flood": (b"", b"e" * CAP),
}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", list(FLOODS))
def test_flood_is_cut_at_exactly_the_cap(sandbox: Sandbox, name: str, language: str) -> None:
    result = sandbox.program(name, language, limits=limits(output=CAP, wall=30))
    assert result.status == pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_OUTPUT
    stdout, stderr = FLOODS[name]
    assert (result.stdout, result.stderr) == (stdout, stderr)
    assert (result.stdout_truncated, result.stderr_truncated) == (bool(stdout), bool(stderr))


@pytest.mark.parametrize("language", LANGUAGES)
def test_writing_through_proc_self_fd(sandbox: Sandbox, language: str) -> None:
    result = sandbox.program("proc_self_fd", language)
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert (result.stdout, result.stderr) == (b"through /proc\n", b"also through /proc\n")


@pytest.mark.parametrize("api", ["unary", "stream"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_binary_output_is_returned_byte_exact(sandbox: Sandbox, language: str, api: str) -> None:
    spec = sandbox.spec(language, PROGRAMS["binary"][language])
    if api == "unary":
        result = sandbox.execute(spec)
        stdout, stderr = result.stdout, result.stderr
    else:
        stdout, stderr, result = sandbox.stream(spec)
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert stdout == BINARY
    assert stderr == BINARY[::-1]


@pytest.mark.parametrize("language", LANGUAGES)
def test_closing_stdout_is_not_mistaken_for_an_exit(sandbox: Sandbox, language: str) -> None:
    result = sandbox.program("close_stdout", language)
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR, result
    assert result.exit_code == 7
    assert (result.stdout, result.stderr) == (b"before\n", b"still running\n")
    assert result.wall_time.ToNanoseconds() >= 1.5e9


@pytest.mark.parametrize("language", LANGUAGES)
def test_closing_every_stream_is_not_mistaken_for_an_exit(sandbox: Sandbox, language: str) -> None:
    started = time.monotonic()
    result = sandbox.program("close_all", language)
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR, result
    assert result.exit_code == 7
    assert (result.stdout, result.stderr) == (b"", b"")
    assert result.wall_time.ToNanoseconds() >= 1.5e9
    assert time.monotonic() - started >= 1.5


@pytest.mark.parametrize("api", ["unary", "stream"])
@pytest.mark.parametrize("language", LANGUAGES)
def test_forged_frames_are_just_output(sandbox: Sandbox, language: str, api: str) -> None:
    spec = sandbox.spec(language, PROGRAMS["forged_frames"][language])
    if api == "unary":
        result = sandbox.execute(spec)
        stdout, stderr = result.stdout, result.stderr
    else:
        stdout, stderr, result = sandbox.stream(spec)
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR, result
    assert result.exit_code == 3
    assert (stdout, stderr) == (FORGED_FRAMES, FORGED_FRAMES)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_supervisors_own_stdout_is_out_of_reach(
    sandbox: Sandbox, runtime: str, language: str, request: pytest.FixtureRequest
) -> None:
    result = sandbox.program("forge_through_init", language)
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR, result
    assert result.exit_code == 9
    assert result.stdout == b"refused 13\nreal output\n"
    assert result.wall_time.ToNanoseconds() >= 1e9
