"""The SDK (`Client`, `AsyncClient`) against a canned service over real gRPC."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]

from codebeaker.client import (
    AsyncClient,
    Client,
    CodeBeakerError,
    Comparison,
    DeadlineExceededError,
    ExecutionCancelledError,
    ExecutionResult,
    ExecutionStatus,
    FailedPreconditionError,
    FieldViolation,
    File,
    Finished,
    InvalidArgumentError,
    Limit,
    Limits,
    NotFoundError,
    Output,
    OutputFile,
    OutputFileStatus,
    OutputStream,
    Package,
    PermissionDeniedError,
    ResourceExhaustedError,
    Runtime,
    ServiceError,
    Stage,
    StageFinished,
    StageResult,
    Started,
    StreamEvent,
    TestCase,
    UnauthenticatedError,
    UnavailableError,
)
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.fake_service import NOT_UTF8, Failure, ScriptedService, serve

ERRORS: list[tuple[grpc.StatusCode, type[CodeBeakerError]]] = [
    (grpc.StatusCode.INVALID_ARGUMENT, InvalidArgumentError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhaustedError),
    (grpc.StatusCode.UNAVAILABLE, UnavailableError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, DeadlineExceededError),
    (grpc.StatusCode.CANCELLED, ExecutionCancelledError),
    (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError),
    (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError),
    (grpc.StatusCode.NOT_FOUND, NotFoundError),
    (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError),
    (grpc.StatusCode.INTERNAL, ServiceError),
    (grpc.StatusCode.UNIMPLEMENTED, ServiceError),
]

FULL_RESULT = pb.ExecutionResult(
    status=pb.EXECUTION_STATUS_RUNTIME_ERROR,
    exit_code=3,
    signal=0,
    stdout=NOT_UTF8,
    stderr=b"Traceback\xff",
    stdout_truncated=True,
    stderr_truncated=False,
    wall_time=Duration(seconds=2, nanos=500_000_000),
    cpu_time=Duration(nanos=125_000_000),
    peak_memory_bytes=12_345_678,
    execution_id="exec-42",
    message="exited with code 3",
)

EXPECTED_RESULT = ExecutionResult(
    status=ExecutionStatus.RUNTIME_ERROR,
    exit_code=3,
    signal=0,
    stdout=NOT_UTF8,
    stderr=b"Traceback\xff",
    stdout_truncated=True,
    stderr_truncated=False,
    wall_time=2.5,
    cpu_time=0.125,
    peak_memory_bytes=12_345_678,
    execution_id="exec-42",
    message="exited with code 3",
)


@dataclass
class FakeServer:
    service: ScriptedService
    address: str


C_RUNTIME = pb.Runtime(language="c", version="12", file_name="main.c", compiled=True)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    service = ScriptedService()
    with serve(service) as address:
        yield FakeServer(service, address)


@pytest.fixture
def client(fake: FakeServer) -> Iterator[Client]:
    with Client(fake.address) as client:
        yield client


@pytest.fixture
def dead_address() -> Iterator[str]:
    """A loopback port that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


# A judged C program: its compile, two test cases (one wrong) and a file.
STAGED_RESULT = pb.ExecutionResult(
    status=pb.EXECUTION_STATUS_WRONG_ANSWER,
    wall_time=Duration(nanos=30_000_000),
    message="1 of 2 test cases passed; case 2: output differs at line 1",
    compile=pb.StageResult(
        stage=pb.STAGE_COMPILE,
        status=pb.EXECUTION_STATUS_OK,
        stderr=b"main.c:1: warning: \xff\n",
        wall_time=Duration(nanos=250_000_000),
    ),
    test_cases=[
        pb.StageResult(
            stage=pb.STAGE_RUN,
            test_case=1,
            status=pb.EXECUTION_STATUS_ACCEPTED,
            stdout=b"3\n",
            message="output matches",
            files=[pb.OutputFile(path="out.txt", status=pb.OUTPUT_FILE_STATUS_OK, content=b"1")],
        ),
        pb.StageResult(
            stage=pb.STAGE_RUN,
            test_case=2,
            status=pb.EXECUTION_STATUS_WRONG_ANSWER,
            stdout=b"4\n",
            stdout_truncated=True,
            cpu_time=Duration(nanos=5_000_000),
            peak_memory_bytes=1 << 20,
            message="output differs at line 1",
            limit_exceeded=pb.LIMIT_OUTPUT,
        ),
    ],
    test_cases_passed=1,
    files=[
        pb.OutputFile(
            path="big.bin",
            status=pb.OUTPUT_FILE_STATUS_TRUNCATED,
            content=b"zz",
            size=3 << 20,
            reason="larger than the cap",
        ),
        pb.OutputFile(path="gone.txt", status=pb.OUTPUT_FILE_STATUS_MISSING, reason="no such file"),
        pb.OutputFile(path="new", status=99),  # type: ignore[arg-type]
    ],
)

EXPECTED_COMPILE = StageResult(
    stage=Stage.COMPILE,
    status=ExecutionStatus.OK,
    stderr=b"main.c:1: warning: \xff\n",
    wall_time=0.25,
)
EXPECTED_CASES = (
    StageResult(
        stage=Stage.RUN,
        test_case=1,
        status=ExecutionStatus.ACCEPTED,
        stdout=b"3\n",
        message="output matches",
        files=(OutputFile("out.txt", OutputFileStatus.OK, b"1"),),
    ),
    StageResult(
        stage=Stage.RUN,
        test_case=2,
        status=ExecutionStatus.WRONG_ANSWER,
        stdout=b"4\n",
        stdout_truncated=True,
        cpu_time=0.005,
        peak_memory_bytes=1 << 20,
        message="output differs at line 1",
        limit_exceeded=Limit.OUTPUT,
    ),
)
EXPECTED_STAGED = ExecutionResult(
    status=ExecutionStatus.WRONG_ANSWER,
    wall_time=0.03,
    message="1 of 2 test cases passed; case 2: output differs at line 1",
    compile=EXPECTED_COMPILE,
    test_cases=EXPECTED_CASES,
    test_cases_passed=1,
    files=(
        OutputFile("big.bin", OutputFileStatus.TRUNCATED, b"zz", 3 << 20, "larger than the cap"),
        OutputFile("gone.txt", OutputFileStatus.MISSING, reason="no such file"),
        OutputFile("new", OutputFileStatus.UNSPECIFIED),
    ),
)


def staged_script() -> list[pb.ExecuteStreamResponse]:
    """The stream of STAGED_RESULT: compile output and cases, each stage reported as it ends."""
    compile_result = pb.StageResult()
    compile_result.CopyFrom(STAGED_RESULT.compile)
    compile_result.ClearField("stderr")  # streamed, so not repeated in the stage's result
    final = pb.ExecutionResult()
    final.CopyFrom(STAGED_RESULT)
    final.compile.ClearField("stderr")
    return [
        pb.ExecuteStreamResponse(
            started=pb.ExecutionStarted(execution_id="exec-9", language="c", version="12")
        ),
        pb.ExecuteStreamResponse(
            output=pb.OutputChunk(
                stream=pb.OUTPUT_STREAM_STDERR, data=b"warning\n", stage=pb.STAGE_COMPILE
            )
        ),
        pb.ExecuteStreamResponse(stage_result=compile_result),
        pb.ExecuteStreamResponse(
            output=pb.OutputChunk(
                stream=pb.OUTPUT_STREAM_STDOUT, data=b"3\n", stage=pb.STAGE_RUN, test_case=1
            )
        ),
        pb.ExecuteStreamResponse(stage_result=STAGED_RESULT.test_cases[0]),
        pb.ExecuteStreamResponse(stage_result=STAGED_RESULT.test_cases[1]),
        pb.ExecuteStreamResponse(result=final),
    ]


EXPECTED_STAGED_STREAM: list[StreamEvent] = [
    Started(execution_id="exec-9", language="c", version="12"),
    Output(OutputStream.STDERR, b"warning\n", stage=Stage.COMPILE),
    StageFinished(StageResult(Stage.COMPILE, ExecutionStatus.OK, wall_time=0.25)),
    Output(OutputStream.STDOUT, b"3\n", stage=Stage.RUN, test_case=1),
    StageFinished(EXPECTED_CASES[0]),
    StageFinished(EXPECTED_CASES[1]),
    Finished(
        replace(
            EXPECTED_STAGED,
            compile=StageResult(Stage.COMPILE, ExecutionStatus.OK, wall_time=0.25),
        )
    ),
]


def expected_stream(result: ExecutionResult) -> list[StreamEvent]:
    return [
        Started(execution_id="exec-1", language="python", version="3.11.2"),
        Output(OutputStream.STDOUT, b"hello "),
        Output(OutputStream.STDERR, NOT_UTF8),
        Output(OutputStream.STDOUT, b"world\n"),
        Finished(result),
    ]


# --- sync client -------------------------------------------------------------


def test_execute_returns_a_typed_result_with_bytes_intact(fake: FakeServer, client: Client) -> None:
    fake.service.result = FULL_RESULT
    result = client.execute("python", "raise SystemExit(3)")
    assert result == EXPECTED_RESULT
    assert not result.ok


def test_ok_verdict(client: Client) -> None:
    result = client.execute("python", "print('out', end='')")
    assert result.ok
    assert result.status is ExecutionStatus.OK
    assert result.stdout == b"out"
    assert result.wall_time == 1.25


def test_execute_sends_the_whole_spec(fake: FakeServer, client: Client) -> None:
    client.execute(
        "py",
        files={"main.py": "import util", "util.py": b"\xffdata"},
        entrypoint="main.py",
        stdin=NOT_UTF8,
        args=["-x", "two words"],
        env={"A": "1"},
        limits=Limits(
            wall_time=1.5,
            cpu_time=0.25,
            memory_bytes=1 << 28,
            max_processes=8,
            max_output_bytes=1024,
        ),
        version="3.11",
        request_id="req-7",
    )
    [spec] = fake.service.specs
    assert spec.language == "py"
    assert spec.source == b""
    assert [(f.path, f.content) for f in spec.files] == [
        ("main.py", b"import util"),
        ("util.py", b"\xffdata"),
    ]
    assert spec.entrypoint == "main.py"
    assert spec.stdin == NOT_UTF8
    assert list(spec.args) == ["-x", "two words"]
    assert dict(spec.env) == {"A": "1"}
    assert spec.limits.wall_time == Duration(seconds=1, nanos=500_000_000)
    assert spec.limits.cpu_time == Duration(nanos=250_000_000)
    assert spec.limits.memory_bytes == 1 << 28
    assert spec.limits.max_processes == 8
    assert spec.limits.max_output_bytes == 1024
    assert spec.version == "3.11"
    assert spec.request_id == "req-7"


def test_source_text_is_utf8_and_unset_limits_stay_unset(fake: FakeServer, client: Client) -> None:
    client.execute("python", "print('héllo')", files=[File("data.bin", b"\x00\xff")])
    client.execute("python", b"\xff")
    first, second = fake.service.specs
    assert first.source == "print('héllo')".encode()
    assert [(f.path, f.content) for f in first.files] == [("data.bin", b"\x00\xff")]
    assert not first.HasField("limits")
    assert second.source == b"\xff"


def test_bad_arguments_are_refused_before_any_call(fake: FakeServer, client: Client) -> None:
    with pytest.raises(TypeError):
        client.execute("python", "", args="-x")
    with pytest.raises(ValueError):
        Limits(wall_time=-1)
    with pytest.raises(ValueError):
        Limits(memory_bytes=-5)
    assert fake.service.specs == []


def test_a_verdict_this_sdk_does_not_know_is_unspecified(fake: FakeServer, client: Client) -> None:
    fake.service.result = pb.ExecutionResult(status=99)  # type: ignore[arg-type]
    assert client.execute("python", "").status is ExecutionStatus.UNSPECIFIED


def test_stream_yields_started_output_finished_in_order(fake: FakeServer, client: Client) -> None:
    fake.service.result = FULL_RESULT
    stream = client.stream("python", "...")
    assert list(stream) == expected_stream(EXPECTED_RESULT)
    assert stream.result == EXPECTED_RESULT


def test_stages_test_cases_and_files_come_back_typed(fake: FakeServer, client: Client) -> None:
    fake.service.runtimes.append(C_RUNTIME)
    fake.service.result = STAGED_RESULT
    result = client.execute("c", "int main(void) { return 0; }")
    assert result == EXPECTED_STAGED
    assert not result.ok
    assert [case.ok for case in result.test_cases] == [True, False]
    assert result.test_cases[0].files[0].ok
    assert not result.files[0].ok


def test_interpreted_results_have_no_compile_stage(client: Client) -> None:
    result = client.execute("python", "")
    assert result.compile is None
    assert result.files == () and result.test_cases == () and result.test_cases_passed == 0


@pytest.mark.parametrize(
    ("status", "ok"),
    [
        (ExecutionStatus.OK, True),
        (ExecutionStatus.ACCEPTED, True),
        (ExecutionStatus.WRONG_ANSWER, False),
        (ExecutionStatus.RUNTIME_ERROR, False),
        (ExecutionStatus.COMPILE_ERROR, False),
    ],
)
def test_ok_means_ran_cleanly_and_passed_if_judged(status: ExecutionStatus, ok: bool) -> None:
    assert ExecutionResult(status).ok is ok
    assert StageResult(Stage.RUN, status, test_case=1).ok is ok


def test_execute_sends_compile_limits_output_files_and_test_cases(
    fake: FakeServer, client: Client
) -> None:
    fake.service.runtimes.append(C_RUNTIME)
    client.execute(
        "c",
        "int main(void) { return 0; }",
        compile_limits=Limits(wall_time=3, cpu_time=2.5, max_output_bytes=4096),
        output_files=("result.txt", "logs/*.log"),
        test_cases=[
            TestCase("1 2\n", "3\n"),
            TestCase(
                NOT_UTF8,
                expected_stdout=b"x  \n",
                comparison=Comparison.IGNORE_TRAILING_WHITESPACE,
            ),
            TestCase(b"unjudged"),
            TestCase(expected_stdout=""),
        ],
    )
    [spec] = fake.service.specs
    assert spec.compile_limits.wall_time == Duration(seconds=3)
    assert spec.compile_limits.cpu_time == Duration(seconds=2, nanos=500_000_000)
    assert spec.compile_limits.max_output_bytes == 4096
    assert spec.compile_limits.memory_bytes == 0 and spec.compile_limits.max_processes == 0
    assert not spec.HasField("limits")
    assert list(spec.output_files) == ["result.txt", "logs/*.log"]
    assert spec.stdin == b""
    first, second, unjudged, empty = spec.test_cases
    assert (first.stdin, first.expected_stdout, first.comparison) == (
        b"1 2\n",
        b"3\n",
        pb.COMPARISON_EXACT,
    )
    assert (second.stdin, second.expected_stdout, second.comparison) == (
        NOT_UTF8,
        b"x  \n",
        pb.COMPARISON_IGNORE_TRAILING_WHITESPACE,
    )
    assert unjudged.stdin == b"unjudged" and not unjudged.HasField("expected_stdout")
    # An empty expectation is still an expectation: the program must print nothing.
    assert empty.HasField("expected_stdout") and empty.expected_stdout == b""


def test_new_options_are_unset_by_default(fake: FakeServer, client: Client) -> None:
    client.execute("python", "")
    [spec] = fake.service.specs
    assert not spec.HasField("compile_limits")
    assert list(spec.output_files) == [] and list(spec.test_cases) == []


def test_bad_new_options_are_refused_before_any_call(fake: FakeServer, client: Client) -> None:
    with pytest.raises(TypeError, match="output_files"):
        client.execute("python", "", output_files="result.txt")
    with pytest.raises(TypeError, match="TestCase"):
        client.execute("python", "", test_cases=[b"1 2"])  # type: ignore[list-item]
    with pytest.raises(ValueError):
        client.execute("python", "", test_cases=[TestCase(comparison="fuzzy")])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        client.execute("python", "", stdinn=b"")  # type: ignore[call-arg]
    assert fake.service.specs == []


def test_stream_reports_stages_and_marks_their_output(fake: FakeServer, client: Client) -> None:
    fake.service.runtimes.append(C_RUNTIME)
    fake.service.script = staged_script()
    with client.stream("c", "...", test_cases=[TestCase("1 2\n", "3\n")]) as stream:
        events = list(stream)
    assert events == EXPECTED_STAGED_STREAM
    assert stream.result == EXPECTED_STAGED_STREAM[-1].result  # type: ignore[union-attr]
    assert len(fake.service.specs[0].test_cases) == 1


def test_an_event_this_sdk_does_not_know_is_skipped(fake: FakeServer, client: Client) -> None:
    fake.service.script = [
        pb.ExecuteStreamResponse(),  # no event set: what a newer kind looks like to us
        pb.ExecuteStreamResponse(result=pb.ExecutionResult(status=pb.EXECUTION_STATUS_OK)),
    ]
    assert list(client.stream("python", "")) == [Finished(ExecutionResult(ExecutionStatus.OK))]


def test_runtimes(client: Client) -> None:
    numpy, pandas = Package("numpy", "1.24.2"), Package("pandas", "1.5.3")
    assert client.runtimes() == [
        Runtime("python", "3.11.2", ("py", "python3"), "main.py", False, (numpy, pandas)),
        Runtime("javascript", "18.19.0", ("js", "node"), "main.js", False),
    ]
    assert client.runtimes()[0].package_versions == {"numpy": "1.24.2", "pandas": "1.5.3"}


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_unary_errors_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "the details")
    with pytest.raises(error) as caught:
        client.execute("python", "")
    assert caught.type is error
    assert caught.value.code == code.name
    assert caught.value.details == "the details"
    with pytest.raises(error):
        client.runtimes()


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_stream_errors_at_start_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "at start")
    with pytest.raises(error) as caught:
        next(client.stream("python", ""))
    assert caught.type is error
    assert caught.value.details == "at start"


@pytest.mark.parametrize(("code", "error"), ERRORS)
def test_stream_errors_mid_stream_map_to_exceptions(
    fake: FakeServer, client: Client, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "mid-stream")
    fake.service.fail_mid_stream = True
    events: list[StreamEvent] = []
    with pytest.raises(error) as caught:
        events.extend(client.stream("python", ""))
    assert caught.type is error
    assert caught.value.details == "mid-stream"
    assert events == expected_stream(ExecutionResult(ExecutionStatus.OK))[:-1]


def test_resource_exhausted_carries_the_retry_hint(fake: FakeServer, client: Client) -> None:
    fake.service.failure = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy", retry_after="2.5")
    with pytest.raises(ResourceExhaustedError) as caught:
        client.execute("python", "")
    assert caught.value.retry_after == 2.5
    fake.service.failure = Failure(grpc.StatusCode.RESOURCE_EXHAUSTED, "busy")
    with pytest.raises(ResourceExhaustedError) as caught:
        client.execute("python", "")
    assert caught.value.retry_after is None


def info(reason: str, domain: str = "codebeaker", **metadata: str) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=domain, metadata=metadata)


def retry_info(seconds: float) -> error_details_pb2.RetryInfo:
    retry = error_details_pb2.RetryInfo()
    retry.retry_delay.FromNanoseconds(round(seconds * 1e9))
    return retry


def bad_request(*violations: tuple[str, str]) -> error_details_pb2.BadRequest:
    return error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=name, description=description)
            for name, description in violations
        ]
    )


def test_invalid_argument_carries_the_reason_and_the_fields(
    fake: FakeServer, client: Client
) -> None:
    fake.service.failure = Failure(
        grpc.StatusCode.INVALID_ARGUMENT,
        "spec.files[3].path: '/etc' must be relative",
        rich=[
            info("PATH_INVALID"),
            bad_request(("spec.files[3].path", "'/etc' must be relative")),
        ],
    )
    for attempt in (lambda: client.execute("python", ""), lambda: next(client.stream("py", ""))):
        with pytest.raises(InvalidArgumentError) as caught:
            attempt()
        assert caught.value.reason == "PATH_INVALID"
        assert caught.value.field_violations == [
            FieldViolation("spec.files[3].path", "'/etc' must be relative")
        ]
        assert caught.value.field_violations[0].field == "spec.files[3].path"
        assert caught.value.details == "spec.files[3].path: '/etc' must be relative"


def test_retry_info_is_the_retry_hint_and_wins_over_the_trailer(
    fake: FakeServer, client: Client
) -> None:
    fake.service.failure = Failure(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "tenant acme is over its quota",
        retry_after="9",
        rich=[info("QUOTA_EXCEEDED", tenant="acme", quota="executions"), retry_info(1.25)],
    )
    with pytest.raises(ResourceExhaustedError) as caught:
        client.execute("python", "")
    assert caught.value.retry_after == 1.25
    assert caught.value.reason == "QUOTA_EXCEEDED"
    assert caught.value.metadata == {"tenant": "acme", "quota": "executions"}
    assert caught.value.field_violations == []


def test_a_status_without_details_leaves_them_empty(fake: FakeServer, client: Client) -> None:
    fake.service.failure = Failure(grpc.StatusCode.UNAVAILABLE, "engine gone")
    with pytest.raises(UnavailableError) as caught:
        client.execute("python", "")
    assert caught.value.reason is None
    assert caught.value.field_violations == []
    assert caught.value.retry_after is None


def test_our_error_info_is_preferred_to_a_proxys(fake: FakeServer, client: Client) -> None:
    fake.service.failure = Failure(
        grpc.StatusCode.UNAVAILABLE,
        "engine gone",
        rich=[info("UPSTREAM_DOWN", domain="proxy.example"), info("ENGINE_UNAVAILABLE")],
    )
    with pytest.raises(UnavailableError) as caught:
        client.execute("python", "")
    assert caught.value.reason == "ENGINE_UNAVAILABLE"


@pytest.mark.parametrize(
    ("code", "error", "reason"),
    [
        (grpc.StatusCode.UNAUTHENTICATED, UnauthenticatedError, "UNAUTHENTICATED"),
        (grpc.StatusCode.PERMISSION_DENIED, PermissionDeniedError, "PERMISSION_DENIED"),
        (grpc.StatusCode.NOT_FOUND, NotFoundError, "NOT_FOUND"),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPreconditionError, "FAILED_PRECONDITION"),
    ],
)
async def test_async_errors_carry_the_reason(
    fake: FakeServer, code: grpc.StatusCode, error: type[CodeBeakerError], reason: str
) -> None:
    fake.service.failure = Failure(code, "no", rich=[info(reason)])
    async with AsyncClient(fake.address) as client:
        with pytest.raises(error) as caught:
            await client.execute("python", "")
        assert caught.value.reason == reason
        assert isinstance(caught.value, CodeBeakerError)
        fake.service.fail_mid_stream = True
        with pytest.raises(error) as caught:
            [event async for event in client.stream("python", "")]
        assert caught.value.reason == reason


def test_unknown_language_is_invalid_argument_naming_the_known_ones(client: Client) -> None:
    with pytest.raises(InvalidArgumentError, match="known languages: javascript, python"):
        client.execute("cobol", "")


def test_per_call_timeout_is_a_deadline(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    with pytest.raises(DeadlineExceededError):
        client.execute("python", "", timeout=0.2)
    assert fake.service.caller_left.wait(10)


def test_client_default_timeout_applies_to_streams(fake: FakeServer) -> None:
    fake.service.hang = True
    with Client(fake.address, timeout=0.2) as client:
        stream = client.stream("python", "")
        assert isinstance(next(stream), Started)
        with pytest.raises(DeadlineExceededError):
            list(stream)


def test_closing_a_stream_early_cancels_the_execution(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    stream = client.stream("python", "")
    assert isinstance(next(stream), Started)
    stream.close()
    assert fake.service.caller_left.wait(10)
    assert list(stream) == []


def test_a_stream_can_be_closed_from_another_thread(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    stream = client.stream("python", "")

    def close_once_running() -> None:
        fake.service.arrived.wait(10)
        stream.close()

    closer = threading.Thread(target=close_once_running)
    closer.start()
    events = list(stream)  # ends quietly whenever the close lands
    closer.join()
    assert all(not isinstance(event, Finished) for event in events)
    assert fake.service.caller_left.wait(10)


def test_leaving_a_stream_block_cancels_the_execution(fake: FakeServer, client: Client) -> None:
    fake.service.hang = True
    with client.stream("python", "") as stream:
        for event in stream:
            if isinstance(event, Output):
                break
    assert fake.service.caller_left.wait(10)


def test_a_stream_without_a_result_is_a_service_error(fake: FakeServer, client: Client) -> None:
    fake.service.omit_result = True
    with pytest.raises(ServiceError, match="without a result"):
        list(client.stream("python", ""))


def test_address_defaults_to_the_environment(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CODEBEAKER_ADDRESS", fake.address)
    with Client() as client:
        assert client.address == fake.address
        assert client.execute("python", "").ok
    monkeypatch.delenv("CODEBEAKER_ADDRESS")
    with Client() as client:
        assert client.address == "127.0.0.1:50051"


def test_unreachable_service_is_unavailable(dead_address: str) -> None:
    with Client(dead_address) as client:
        with pytest.raises(UnavailableError):
            client.runtimes()
        with pytest.raises(UnavailableError):
            list(client.stream("python", ""))


# --- asyncio client ----------------------------------------------------------


async def test_async_execute_returns_a_typed_result(fake: FakeServer) -> None:
    fake.service.result = FULL_RESULT
    async with AsyncClient(fake.address) as client:
        assert await client.execute("python", "", stdin="text") == EXPECTED_RESULT
    assert fake.service.specs[0].stdin == b"text"


async def test_async_stream_yields_events_in_order(fake: FakeServer) -> None:
    fake.service.result = FULL_RESULT
    async with AsyncClient(fake.address) as client:
        stream = client.stream("python", "")
        events = [event async for event in stream]
    assert events == expected_stream(EXPECTED_RESULT)
    assert stream.result == EXPECTED_RESULT


async def test_async_execute_and_stream_with_stages(fake: FakeServer) -> None:
    fake.service.runtimes.append(C_RUNTIME)
    fake.service.result = STAGED_RESULT
    fake.service.script = staged_script()
    async with AsyncClient(fake.address) as client:
        result = await client.execute(
            "c", "...", compile_limits=Limits(wall_time=1), output_files=["out.txt"]
        )
        events = [event async for event in client.stream("c", "...", test_cases=[TestCase()])]
    assert result == EXPECTED_STAGED
    assert events == EXPECTED_STAGED_STREAM
    first, second = fake.service.specs
    assert first.compile_limits.wall_time == Duration(seconds=1)
    assert list(first.output_files) == ["out.txt"]
    assert len(second.test_cases) == 1 and not second.test_cases[0].HasField("expected_stdout")


async def test_async_runtimes(fake: FakeServer) -> None:
    async with AsyncClient(fake.address) as client:
        runtimes = await client.runtimes()
    assert [r.language for r in runtimes] == ["python", "javascript"]


@pytest.mark.parametrize(("code", "error"), ERRORS)
async def test_async_errors_map_to_exceptions(
    fake: FakeServer, code: grpc.StatusCode, error: type[CodeBeakerError]
) -> None:
    fake.service.failure = Failure(code, "oops", retry_after="7")
    async with AsyncClient(fake.address) as client:
        with pytest.raises(error) as caught:
            await client.execute("python", "")
        assert caught.type is error
        assert caught.value.details == "oops"
        if isinstance(caught.value, ResourceExhaustedError):
            assert caught.value.retry_after == 7
        with pytest.raises(error):
            await client.runtimes()

        fake.service.fail_mid_stream = True
        events: list[StreamEvent] = []
        with pytest.raises(error) as caught:
            events.extend([event async for event in client.stream("python", "")])
        assert caught.type is error


async def test_async_mid_stream_error_after_events(fake: FakeServer) -> None:
    fake.service.failure = Failure(grpc.StatusCode.UNAVAILABLE, "engine gone")
    fake.service.fail_mid_stream = True
    events: list[StreamEvent] = []
    async with AsyncClient(fake.address) as client:
        with pytest.raises(UnavailableError, match="engine gone"):
            async for event in client.stream("python", ""):
                events.append(event)
    assert len(events) == 4
    assert isinstance(events[0], Started)


async def test_async_timeout_is_a_deadline(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address, timeout=0.2) as client:
        with pytest.raises(DeadlineExceededError):
            await client.execute("python", "")


async def test_async_aclose_cancels_the_execution(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address) as client:
        stream = client.stream("python", "")
        assert isinstance(await anext(stream), Started)
        await stream.aclose()
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)
        assert [event async for event in stream] == []


async def test_async_cancelling_the_reading_task_cancels_the_execution(
    fake: FakeServer,
) -> None:
    fake.service.hang = True
    fake.service.chunks = [(pb.OUTPUT_STREAM_STDOUT, b"first")]
    first_output = asyncio.Event()

    async def consume(client: AsyncClient) -> None:
        async for event in client.stream("python", ""):
            if isinstance(event, Output):
                first_output.set()

    async with AsyncClient(fake.address) as client:
        task = asyncio.create_task(consume(client))
        await first_output.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)


async def test_async_cancelling_execute_cancels_the_execution(fake: FakeServer) -> None:
    fake.service.hang = True
    async with AsyncClient(fake.address) as client:
        task = asyncio.create_task(client.execute("python", ""))
        assert await asyncio.to_thread(fake.service.arrived.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(fake.service.caller_left.wait, 10)


async def test_async_unreachable_service_is_unavailable(dead_address: str) -> None:
    async with AsyncClient(dead_address) as client:
        with pytest.raises(UnavailableError):
            await client.execute("python", "")
