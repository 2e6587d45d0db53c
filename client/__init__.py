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

        # Queued on the server, collected later (here or by name from anywhere).
        operation = client.submit("python", "print('later')", request_id="job-17")
        print(operation.name, operation.state)
        print(client.get_operation(operation.name).wait(timeout=60).stdout)
"""

from codebeaker.client.aio import AsyncClient, AsyncExecutionStream
from codebeaker.client.aio_operation import AsyncOperation
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
    WaitTimeoutError,
)
from codebeaker.client.operation import Operation
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
    OperationMetadata,
    OperationState,
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
    "AsyncOperation",
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
    "Operation",
    "OperationMetadata",
    "OperationState",
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
    "WaitTimeoutError",
]
