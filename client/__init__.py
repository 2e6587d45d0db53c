"""Python SDK for CodeBeaker: run untrusted code in single-use sandboxes.

`Client` (blocking) and `AsyncClient` (asyncio) call the CodeBeaker gRPC
service and return typed, frozen values; failures raise `CodeBeakerError`
subclasses. Only the generated `codebeaker.v1` stubs are needed, never the
server.

    from codebeaker.client import Client, Limits

    with Client("127.0.0.1:50051") as client:
        result = client.execute("python", "print('hi')", limits=Limits(wall_time=5))
        print(result.status, result.stdout)
"""

from codebeaker.client.aio import AsyncClient, AsyncExecutionStream
from codebeaker.client.errors import (
    CodeBeakerError,
    DeadlineExceededError,
    ExecutionCancelledError,
    InvalidArgumentError,
    ResourceExhaustedError,
    ServiceError,
    UnavailableError,
)
from codebeaker.client.sync import Client, ExecutionStream
from codebeaker.client.types import (
    ExecutionResult,
    ExecutionStatus,
    File,
    Finished,
    Limit,
    Limits,
    Output,
    OutputStream,
    Runtime,
    Started,
    StreamEvent,
)

__all__ = [
    "AsyncClient",
    "AsyncExecutionStream",
    "Client",
    "CodeBeakerError",
    "DeadlineExceededError",
    "ExecutionCancelledError",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutionStream",
    "File",
    "Finished",
    "InvalidArgumentError",
    "Limit",
    "Limits",
    "Output",
    "OutputStream",
    "ResourceExhaustedError",
    "Runtime",
    "ServiceError",
    "Started",
    "StreamEvent",
    "UnavailableError",
]
