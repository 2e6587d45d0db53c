"""A canned ExecutionService on a loopback port, for testing the SDK and the CLI.

A plain (threaded) grpc server, so the sync client, the asyncio client and a
CLI subprocess can all talk to it while the test thread waits. Tests set what
the next call should do (output, verdict, failure, hang) and read back what the
service was asked and whether the caller went away. It knows nothing of the
real server: it plays the contract, nothing more.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import status_pb2  # type: ignore[import-untyped, unused-ignore]

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

# Bytes that are not UTF-8, to prove nothing on the way decodes program data.
NOT_UTF8 = b"\xff\xfe\x00raw\x80\n"


def default_runtimes() -> list[pb.Runtime]:
    return [
        pb.Runtime(
            language="python",
            version="3.11.2",
            aliases=["py", "python3"],
            file_name="main.py",
            packages=[
                pb.Package(name="numpy", version="1.24.2"),
                pb.Package(name="pandas", version="1.5.3"),
            ],
        ),
        pb.Runtime(
            language="javascript", version="18.19.0", aliases=["js", "node"], file_name="main.js"
        ),
    ]


@dataclass
class Failure:
    """Abort the RPC with this status (at the start, or mid-stream).

    `rich` are `google.rpc` detail messages (ErrorInfo, BadRequest, ...) sent
    in a `google.rpc.Status`, the way the real server sends them.
    """

    code: grpc.StatusCode
    details: str
    retry_after: str | None = None
    rich: list[Message] = field(default_factory=list)


@dataclass
class FakeExecutionService(pb_grpc.ExecutionServiceServicer):
    """Canned behaviour, set by the test before the call."""

    result: pb.ExecutionResult = field(
        default_factory=lambda: pb.ExecutionResult(
            status=pb.EXECUTION_STATUS_OK,
            stdout=b"out",
            execution_id="exec-1",
            wall_time=Duration(seconds=1, nanos=250_000_000),
        )
    )
    # Streamed before the result, in order.
    chunks: list[tuple[pb.OutputStream.ValueType, bytes]] = field(
        default_factory=lambda: [
            (pb.OUTPUT_STREAM_STDOUT, b"hello "),
            (pb.OUTPUT_STREAM_STDERR, NOT_UTF8),
            (pb.OUTPUT_STREAM_STDOUT, b"world\n"),
        ]
    )
    failure: Failure | None = None
    fail_mid_stream: bool = False
    # Block (after any chunks) until the caller cancels, times out or leaves.
    hang: bool = False
    omit_result: bool = False
    runtimes: list[pb.Runtime] = field(default_factory=default_runtimes)

    specs: list[pb.ExecutionSpec] = field(default_factory=list)
    runtimes_calls: int = 0
    # Set when an execution request has arrived.
    arrived: threading.Event = field(default_factory=threading.Event)
    # Set when an execution ended before the service answered it: the caller
    # cancelled, timed out or went away. What cancellation tests wait for.
    caller_left: threading.Event = field(default_factory=threading.Event)

    def Execute(
        self, request: pb.ExecuteRequest, context: grpc.ServicerContext
    ) -> pb.ExecuteResponse:
        call = self._accept(request.spec, context)
        if self.failure is not None:
            call.abort(self.failure)
        if self.hang:
            call.ended.wait()
        call.answered = True
        return pb.ExecuteResponse(result=self.result)

    def ExecuteStream(
        self, request: pb.ExecuteStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExecuteStreamResponse]:
        call = self._accept(request.spec, context)
        if self.failure is not None and not self.fail_mid_stream:
            call.abort(self.failure)
        sequence = 0

        def numbered(**event: object) -> pb.ExecuteStreamResponse:
            nonlocal sequence
            sequence += 1
            return pb.ExecuteStreamResponse(sequence=sequence, **event)  # type: ignore[arg-type]

        yield numbered(
            started=pb.ExecutionStarted(
                execution_id="exec-1", language=request.spec.language, version="3.11.2"
            )
        )
        for stream, data in self.chunks:
            yield numbered(output=pb.OutputChunk(stream=stream, data=data))
        if self.failure is not None:
            call.abort(self.failure)
        if self.hang:
            call.ended.wait()
            return
        call.answered = True
        if not self.omit_result:
            yield numbered(result=self.result)

    def ListRuntimes(
        self, request: pb.ListRuntimesRequest, context: grpc.ServicerContext
    ) -> pb.ListRuntimesResponse:
        self.runtimes_calls += 1
        if self.failure is not None:
            _Call(context, self.caller_left).abort(self.failure)
        return pb.ListRuntimesResponse(runtimes=self.runtimes)

    def SubmitExecution(
        self, request: pb.SubmitExecutionRequest, context: grpc.ServicerContext
    ) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "the fake service has no queue")

    def _accept(self, spec: pb.ExecutionSpec, context: grpc.ServicerContext) -> _Call:
        """Record the spec; reject unknown languages the way the contract says."""
        call = _Call(context, self.caller_left)
        self.specs.append(spec)
        self.arrived.set()
        names = {r.language for r in self.runtimes} | {a for r in self.runtimes for a in r.aliases}
        if spec.language not in names:
            known = ", ".join(sorted({r.language for r in self.runtimes}))
            call.abort(
                Failure(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"spec.language: unknown language {spec.language!r}; known languages: {known}",
                )
            )
        return call


class _Call:
    """One RPC as the service sees it: did it answer before the call ended?"""

    def __init__(self, context: grpc.ServicerContext, caller_left: threading.Event) -> None:
        self.context = context
        self.answered = False
        self.ended = threading.Event()
        self._caller_left = caller_left
        if not context.add_callback(self._on_end):
            self._on_end()  # already over

    def abort(self, failure: Failure) -> None:
        self.answered = True
        trailer: list[tuple[str, str | bytes]] = []
        if failure.retry_after is not None:
            trailer.append(("retry-after", failure.retry_after))
        if failure.rich:
            status = status_pb2.Status(code=failure.code.value[0], message=failure.details)
            for detail in failure.rich:
                status.details.add().Pack(detail)
            trailer.append(("grpc-status-details-bin", status.SerializeToString()))
        if trailer:
            self.context.set_trailing_metadata(tuple(trailer))
        self.context.abort(failure.code, failure.details)

    def _on_end(self) -> None:
        # A sync grpc server runs this when the RPC terminates for any reason;
        # a sync streaming handler blocked in a send is simply abandoned then.
        if not self.answered:
            self._caller_left.set()
        self.ended.set()


@contextmanager
def serve(service: FakeExecutionService) -> Iterator[str]:
    """Run `service` on 127.0.0.1 port 0; yields its address."""
    server = grpc.server(ThreadPoolExecutor(max_workers=8))
    pb_grpc.add_ExecutionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        # grace=None ends hanging calls at once, which releases their threads.
        server.stop(grace=None).wait()


@dataclass
class ScriptedService(FakeExecutionService):
    """Streams exactly `script` (numbered here) when one is set, for events the
    plain fake does not send; otherwise the plain fake."""

    script: list[pb.ExecuteStreamResponse] = field(default_factory=list)

    def ExecuteStream(
        self, request: pb.ExecuteStreamRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.ExecuteStreamResponse]:
        if not self.script:
            yield from super().ExecuteStream(request, context)
            return
        self._accept(request.spec, context)
        for sequence, message in enumerate(self.script, start=1):
            numbered = pb.ExecuteStreamResponse(sequence=sequence)
            numbered.MergeFrom(message)
            yield numbered
