"""Python SDK for CodeBeaker: run untrusted code in single-use sandboxes, or in
sessions that keep their files and processes from one call to the next.

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

        # A session: one sandbox for many commands, deleted when the block ends.
        with client.create_session("python", idle_timeout=600) as session:
            session.write_files({"data.csv": "a,b\\n1,2\\n"})
            print(session.exec(["python3", "-c", "print(open('data.csv').read())"]).stdout)
            print(session.exec("wc -l data.csv").exit_code)  # a str runs as sh -c
            with session.interactive(["python3", "-i"]) as repl:
                repl.write("print(6 * 7)\\n")
                repl.close_stdin()
                print(repl.result().stdout)

`Session` (`AsyncSession` for `AsyncClient`) drives one session: `exec`
(buffered `ExecResult`), `exec_stream` (`ExecStarted`, `ExecOutput`,
`ExecDisplay`, `ExecFinished` events), `interactive` (stdin as it is written,
`signal`), `run_code` (a code cell of a Python or JavaScript session's
interpreter: a `CellResult` with `.text`, `.html`, `.images`),
`write_files`/`read_files`/`list_files`, `list_execs`, `attach` (replay and
follow an Exec), `pause`/`resume`/`delete`; its `info` is a
`SessionInfo`. `Client.list_sessions` and `watch_sessions` (`SessionEvent`s)
see every session of the caller.
"""

from codebeaker.client.aio import AsyncClient, AsyncExecutionStream
from codebeaker.client.aio_exec_stream import (
    AsyncExecStream,
    AsyncInteractiveExec,
    AsyncSessionWatch,
)
from codebeaker.client.aio_operation import AsyncOperation
from codebeaker.client.aio_session import AsyncSession
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
from codebeaker.client.exec_stream import ExecStream, InteractiveExec, SessionWatch
from codebeaker.client.operation import Operation
from codebeaker.client.session import Session
from codebeaker.client.session_types import (
    CellResult,
    ExecDisplay,
    ExecEvent,
    ExecFinished,
    ExecInfo,
    ExecOutput,
    ExecResult,
    ExecStarted,
    ExecState,
    FileEntry,
    FileList,
    FilesWritten,
    FileType,
    SessionEvent,
    SessionEventType,
    SessionInfo,
    SessionState,
    SessionUsage,
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
    OperationMetadata,
    OperationState,
    Output,
    OutputFile,
    OutputFileStatus,
    OutputStream,
    Package,
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
    "AsyncExecStream",
    "AsyncExecutionStream",
    "AsyncInteractiveExec",
    "AsyncOperation",
    "AsyncSession",
    "AsyncSessionWatch",
    "CellResult",
    "Client",
    "CodeBeakerError",
    "Comparison",
    "DeadlineExceededError",
    "ExecDisplay",
    "ExecEvent",
    "ExecFinished",
    "ExecInfo",
    "ExecOutput",
    "ExecResult",
    "ExecStarted",
    "ExecState",
    "ExecStream",
    "ExecutionCancelledError",
    "ExecutionOptions",
    "ExecutionResult",
    "ExecutionStatus",
    "ExecutionStream",
    "FailedPreconditionError",
    "FieldViolation",
    "File",
    "FileEntry",
    "FileList",
    "FileType",
    "Files",
    "FilesWritten",
    "Finished",
    "InteractiveExec",
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
    "Package",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "Runtime",
    "ServiceError",
    "Session",
    "SessionEvent",
    "SessionEventType",
    "SessionInfo",
    "SessionState",
    "SessionUsage",
    "SessionWatch",
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
