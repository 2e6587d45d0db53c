"""Python SDK for CodeBeaker: run untrusted code in single-use sandboxes.

`Client` (blocking) and `AsyncClient` (asyncio) call the CodeBeaker gRPC
service and return typed, frozen values; failures raise `CodeBeakerError`
subclasses. Only the generated `codebeaker.v1` stubs are needed, never the
server.

    from codebeaker.client import Client, Limits, TestCase

    with Client("127.0.0.1:50051") as client:
        result = client.execute("python", "print('hi')", limits=Limits(wall_time=5))
        print(result.status, result.stdout)

        # A compiled program judged against test cases: compiled once, run per case.
        judged = client.execute(
            "c",
            files={"main.c": c_source, "helper.h": header},
            test_cases=[TestCase("1 2\\n", expected_stdout="3\\n")],
        )
        print(judged.status, f"{judged.test_cases_passed}/{len(judged.test_cases)} passed")
"""

from codebeaker.client.aio import AsyncClient, AsyncExecutionStream
from codebeaker.client.errors import (
    CodeBeakerError,
    DeadlineExceededError,
    ExecutionCancelledError,
    FailedPreconditionError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    ServiceError,
    UnauthenticatedError,
    UnavailableError,
)
from codebeaker.client.sync import Client, ExecutionStream
from codebeaker.client.types import (
    Comparison,
    ExecutionOptions,
    ExecutionResult,
    ExecutionStatus,
    File,
    Files,
    Finished,
    Limit,
    Limits,
    Output,
    OutputFile,
    OutputFileStatus,
    OutputStream,
    Runtime,
    Source,
    Stage,
    StageFinished,
    StageResult,
    Started,
    StreamEvent,
    TestCase,
)

__all__ = [
    "AsyncClient",
    "AsyncExecutionStream",
    "Client",
    "CodeBeakerError",
    "Comparison",
    "DeadlineExceededError",
    "ExecutionCancelledError",
    "ExecutionOptions",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutionStream",
    "FailedPreconditionError",
    "FieldViolation",
    "File",
    "Files",
    "Finished",
    "InvalidArgumentError",
    "Limit",
    "Limits",
    "NotFoundError",
    "Output",
    "OutputFile",
    "OutputFileStatus",
    "OutputStream",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "Runtime",
    "ServiceError",
    "Source",
    "Stage",
    "StageFinished",
    "StageResult",
    "Started",
    "StreamEvent",
    "TestCase",
    "UnauthenticatedError",
    "UnavailableError",
]
