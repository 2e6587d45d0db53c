"""`codebeaker submit`, `wait` and `operations ...`, run as processes against a canned queue.

`wait` must show a result and exit exactly as `run` does: for each verdict the
same result is run through `run` (against the canned ExecutionService) and
through `wait` (against the canned queue), and the two processes must agree
byte for byte.
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
from google.rpc import code_pb2, status_pb2  # type: ignore[import-untyped, unused-ignore]

from codebeaker.v1 import execution_pb2 as pb
from tests.unit.cli_environment import environment
from tests.unit.fake_operations import FakeQueue, serve_queue
from tests.unit.fake_service import NOT_UTF8, ScriptedService, serve

CLIENT_ONLY = [sys.executable, "-m", "codebeaker.client"]
CONSOLE_SCRIPT = [str(Path(sys.executable).parent / "codebeaker")]


@pytest.fixture
def queue() -> Iterator[tuple[FakeQueue, str]]:
    with serve_queue() as served:
        yield served


@pytest.fixture
def fake(queue: tuple[FakeQueue, str]) -> FakeQueue:
    return queue[0]


@pytest.fixture
def address(queue: tuple[FakeQueue, str]) -> str:
    return queue[1]


def codebeaker(
    *args: str | Path, cwd: Path | None = None, command: list[str] = CLIENT_ONLY
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*command, *map(str, args)],
        capture_output=True,
        env=environment(),
        cwd=cwd,
        timeout=60,
        check=False,
    )


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "main.py"
    path.write_bytes(b"print('hello world')\n")
    return path


def test_submit_prints_only_the_operation_name(
    fake: FakeQueue, address: str, program: Path, tmp_path: Path
) -> None:
    (tmp_path / "in.txt").write_bytes(b"input")
    done = codebeaker(
        "submit", program, "--address", address, "--stdin", tmp_path / "in.txt",
        "--wall-time", "2", "--output", "out.txt", "--", "-x", "y",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == b""
    (name,) = done.stdout.decode().splitlines()
    assert name in fake.jobs
    (request,) = fake.submits
    spec = request.spec
    assert spec.language == "python"  # from the extension, as run infers it
    assert spec.source == b"print('hello world')\n" and spec.entrypoint == "main.py"
    assert spec.stdin == b"input" and list(spec.args) == ["-x", "y"]
    assert spec.limits.wall_time == Duration(seconds=2)
    assert list(spec.output_files) == ["out.txt"]
    assert request.request_id == ""


def test_submit_with_a_request_id_is_idempotent(
    fake: FakeQueue, address: str, program: Path
) -> None:
    first = codebeaker("submit", program, "--request-id", "job-7", "--address", address)
    again = codebeaker("submit", "--request-id", "job-7", program, "--address", address)
    assert first.returncode == again.returncode == 0
    assert first.stdout == again.stdout
    assert len(fake.jobs) == 1
    assert [r.request_id for r in fake.submits] == ["job-7", "job-7"]


def test_submit_works_from_the_console_script(fake: FakeQueue, address: str, program: Path) -> None:
    done = codebeaker("submit", program, "--address", address, command=CONSOLE_SCRIPT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode().strip() in fake.jobs


def test_submit_refused_exits_as_run_would(address: str, program: Path) -> None:
    done = codebeaker("submit", "-l", "no-such-language", program, "--address", address)
    assert done.returncode == 2
    assert done.stderr == b"codebeaker: invalid request: unknown language\n"


CASE = pb.StageResult(
    stage=pb.STAGE_RUN,
    test_case=1,
    status=pb.EXECUTION_STATUS_ACCEPTED,
    stdout=b"3\n",
    wall_time=Duration(nanos=12_000_000),
)
WRONG = pb.StageResult(
    stage=pb.STAGE_RUN,
    test_case=2,
    status=pb.EXECUTION_STATUS_WRONG_ANSWER,
    stdout=b"4\n",
    message="output differs at line 1",
)
VERDICTS = {
    "ok": pb.ExecutionResult(status=pb.EXECUTION_STATUS_OK, stdout=b"hi\n", stderr=NOT_UTF8),
    "exit-3": pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_RUNTIME_ERROR, exit_code=3, stdout=b"partial", stderr=b"boom\n"
    ),
    "tle": pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED,
        wall_time=Duration(seconds=2),
        message="wall time limit of 2s",
    ),
    "signal": pb.ExecutionResult(status=pb.EXECUTION_STATUS_SIGNALED, signal=9),
    "compile-error": pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_COMPILE_ERROR,
        compile=pb.StageResult(
            stage=pb.STAGE_COMPILE, status=pb.EXECUTION_STATUS_COMPILE_ERROR, stderr=b"err\n"
        ),
    ),
    "judged": pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_WRONG_ANSWER,
        test_cases=[CASE, WRONG],
        test_cases_passed=1,
    ),
    "output-file": pb.ExecutionResult(
        status=pb.EXECUTION_STATUS_OK,
        files=[pb.OutputFile(path="out/r.txt", status=pb.OUTPUT_FILE_STATUS_OK, content=b"42")],
    ),
}


@pytest.mark.parametrize("verdict", sorted(VERDICTS))
@pytest.mark.parametrize("verbose", [False, True])
def test_wait_shows_and_exits_exactly_as_run(
    fake: FakeQueue, address: str, tmp_path: Path, verdict: str, verbose: bool
) -> None:
    result = VERDICTS[verdict]
    for side in ("run", "wait"):  # the same files, in two places
        (tmp_path / side).mkdir()
        for name in ("main.py", "in1", "out1", "in2", "out2"):
            (tmp_path / side / name).write_bytes(b"")
    judged = ["--case", "in1:out1", "--case", "in2:out2"] if result.test_cases else []
    shown = ["-v"] if verbose else []

    service = ScriptedService(result=result, chunks=[])
    with serve(service) as run_address:
        ran = codebeaker(
            "run", "main.py", *judged, *shown, "--output-dir", "files", "--address", run_address,
            cwd=tmp_path / "run",
        )  # fmt: skip

    name = fake.add("RUNNING")
    fake.succeed(name, result)
    waited = codebeaker(
        "wait", name, *shown, "--output-dir", "files", "--address", address, cwd=tmp_path / "wait"
    )
    assert waited.returncode == ran.returncode
    assert waited.stdout == ran.stdout
    if verbose:  # wait's first line is about the operation; run's is the execution's
        assert waited.stderr.startswith(f"codebeaker: {name} SUCCEEDED attempts=1".encode())
        assert waited.stderr.splitlines()[1:] == [
            line
            for line in ran.stderr.splitlines()
            if not line.startswith(b"codebeaker: execution")
        ]
    else:
        assert waited.stderr == ran.stderr
    assert _files(tmp_path / "wait" / "files") == _files(tmp_path / "run" / "files")


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in directory.rglob("*")
        if path.is_file()
    }


def test_wait_gives_up_after_its_timeout_with_124(fake: FakeQueue, address: str) -> None:
    name = fake.add("QUEUED")
    done = codebeaker("wait", name, "--timeout", "300ms", "--address", address)
    assert done.returncode == 124
    assert done.stderr == (
        f"codebeaker: not done yet: {name} is still QUEUED after 0.3s (it goes on)\n".encode()
    )
    assert fake.waits and all(asked <= 0.3 for asked in fake.waits)


def test_ctrl_c_stops_waiting_and_leaves_the_operation_queued(
    fake: FakeQueue, address: str
) -> None:
    name = fake.add("QUEUED")
    with subprocess.Popen(
        [*CLIENT_ONLY, "wait", name, "--address", address],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment(),
    ) as process:
        assert fake.waiting.wait(timeout=30)  # its WaitOperation is held
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 130
        assert process.stderr is not None
        assert b"Traceback" not in process.stderr.read()
    assert fake.cancels == []
    assert fake.jobs[name].metadata.state == pb.EXECUTION_STATE_QUEUED


def test_wait_for_an_operation_that_did_not_run(fake: FakeQueue, address: str) -> None:
    failed = fake.add("RUNNING")
    fake.fail(failed, status_pb2.Status(code=code_pb2.UNAVAILABLE, message="engine down"))
    done = codebeaker("wait", failed, "--address", address)
    assert done.returncode == 69
    assert b"service unavailable" in done.stderr and b"engine down" in done.stderr

    cancelled = fake.add("QUEUED")
    assert codebeaker("operations", "cancel", cancelled, "--address", address).returncode == 0
    done = codebeaker("wait", cancelled.removeprefix("operations/"), "--address", address)
    assert done.returncode == 70
    assert done.stderr == b"codebeaker: cancelled: cancelled while queued\n"

    done = codebeaker("wait", "operations/nope", "--address", address)
    assert done.returncode == 66
    assert done.stderr == b"codebeaker: not found: no operation operations/nope\n"


def test_operations_list_is_a_table_or_json_lines(fake: FakeQueue, address: str) -> None:
    queued = fake.add("QUEUED")
    finished = fake.add("RUNNING")
    fake.succeed(finished)
    done = codebeaker("operations", "list", "--address", address)
    assert done.returncode == 0, done.stderr
    header, *rows = done.stdout.decode().splitlines()
    assert header.split() == ["NAME", "STATE", "CREATED", "ATTEMPTS", "OUTCOME"]
    assert [row.split()[:2] for row in rows] == [[finished, "SUCCEEDED"], [queued, "QUEUED"]]
    assert rows[0].split()[2:] == ["2023-11-14T22:13:21Z", "1", "OK", "exit=0"]

    done = codebeaker("operations", "list", "--json", "--state", "queued", "--address", address)
    assert [json.loads(line)["name"] for line in done.stdout.splitlines()] == [queued]
    assert fake.filters[-1] == "state = QUEUED"
    done = codebeaker("operations", "list", "--done", "--json", "--address", address)
    (shown,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert shown["name"] == finished and shown["result"]["status"] == "OK"
    assert fake.filters[-1] == "done = true"


def test_operations_get_cancel_and_delete(fake: FakeQueue, address: str) -> None:
    name = fake.add("RUNNING")
    done = codebeaker("operations", "get", name, "--address", address)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert f"name: {name}" in lines
    assert "state: RUNNING" in lines and "attempts: 1" in lines and "done: no" in lines

    done = codebeaker("operations", "cancel", name, "--address", address)
    assert done.stdout == f"{name} RUNNING (cancel requested)\n".encode()
    stopped = status_pb2.Status(code=code_pb2.CANCELLED, message="cancelled while running")
    fake.fail(name, stopped, state="CANCELLED")
    shown = json.loads(codebeaker("operations", "get", name, "--json", "--address", address).stdout)
    assert shown["state"] == "CANCELLED" and shown["cancel_requested"] is True
    assert shown["error"] == {
        "code": "CANCELLED",
        "message": "cancelled while running",
        "reason": None,
    }
    assert shown["end_time"] == "2023-11-14T22:16:40Z"

    assert codebeaker("operations", "delete", name, "--address", address).returncode == 0
    assert name not in fake.jobs
    done = codebeaker("operations", "get", name, "--address", address)
    assert done.returncode == 66


def test_operations_usage_errors_exit_2(address: str) -> None:
    done = codebeaker("operations")
    assert done.returncode == 2
    assert done.stderr.endswith(b"codebeaker: choose a command: list, get, cancel or delete\n")
    done = codebeaker("operations", "list", "--state", "SLEEPING", "--address", address)
    assert done.returncode == 2
    done = codebeaker("wait", "operations/", "--address", address)
    assert done.returncode == 2
    assert b"Traceback" not in done.stderr
