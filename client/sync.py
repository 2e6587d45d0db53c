"""The blocking client: `Client` and its stream iterator, over a grpc channel.

For scripts, notebooks, the CLI and threaded callers. `submit` queues a
program instead of running it now; the `Operation` it returns (in
`operation`) follows it; `create_session` starts a stateful sandbox whose
`Session` handle (in `session`) drives it. Requests and results go
through `_convert`, failures through `errors.translate_rpc_errors`, so this
module only adds what is particular to blocking gRPC: futures that are
cancelled when the caller is interrupted, and an iterator whose `close()`
cancels the RPC so the server tears the sandbox down.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Protocol, Self, Unpack

import grpc

from codebeaker.client._channel import PemSource, connection
from codebeaker.client._convert import (
    build_spec,
    event_from_proto,
    result_from_proto,
    runtimes_from_proto,
)
from codebeaker.client._operation_convert import list_filter, operation_name, snapshot_from_proto
from codebeaker.client._session_convert import (
    create_request,
    info_from_proto,
    list_request,
    session_name,
    watch_request,
)
from codebeaker.client._settings import ChannelOptions, deadline
from codebeaker.client._tracing import CallSpan, traced_call
from codebeaker.client.errors import CodeBeakerError, ServiceError, translate_rpc_errors
from codebeaker.client.exec_stream import SessionWatch
from codebeaker.client.operation import Operation, OperationCalls, iterate_operations
from codebeaker.client.session import Session, SessionCalls, iterate_sessions
from codebeaker.client.session_types import SessionInfo, SessionState
from codebeaker.client.types import (
    ExecutionOptions,
    ExecutionResult,
    Finished,
    Limits,
    OperationState,
    Packages,
    Runtime,
    Source,
    StreamEvent,
)
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc


class _StreamCall(Protocol):
    """The part of grpc's response-stream call object this module uses."""

    def __next__(self) -> pb.ExecuteStreamResponse: ...

    def cancel(self) -> bool: ...


class ExecutionStream(Iterator[StreamEvent]):
    """Events of one streamed execution: `Started`, `Output`/`StageFinished`..., `Finished`.

    Iterate it, or use it as a context manager: leaving the block, `close()`
    or `cancel()` before `Finished` cancels the RPC and the server kills the
    program. RPC failures (at start or mid-stream) raise `CodeBeakerError`s.
    """

    def __init__(self, call: _StreamCall, span: CallSpan) -> None:
        self._call = call
        self._span = span
        self._closed = False
        self._exhausted = False
        self._result: ExecutionResult | None = None

    @property
    def result(self) -> ExecutionResult | None:
        """The verdict, once the `Finished` event has been read."""
        return self._result

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> StreamEvent:
        while not (self._exhausted or self._closed):
            try:
                with translate_rpc_errors():
                    message = next(self._call)
            except StopIteration:
                self._exhausted = True
                if self._result is None:
                    broken = ServiceError("the stream ended without a result")
                    self._span.end(broken)
                    raise broken from None
                break
            except CodeBeakerError as error:
                self._exhausted = True
                if self._closed:
                    break  # the failure is the cancellation we asked for
                self._span.end(error)
                raise
            except BaseException:
                # Interrupted while waiting (Ctrl-C, ...): the program is still
                # running; don't leave it behind.
                self.cancel()
                raise
            event = event_from_proto(message)
            if isinstance(event, Finished):
                self._result = event.result
                self._span.result(event.result)
                self._span.end()
            if event is not None:
                return event
        raise StopIteration

    def cancel(self) -> None:
        """Stop the execution if it is still running; safe from any thread."""
        # Once the verdict is in, the server is done: nothing left to stop.
        if not (self._closed or self._exhausted or self._result is not None):
            self._closed = True
            self._call.cancel()
        self._closed = True
        self._span.end()

    def close(self) -> None:
        """Same as `cancel()`; lets `contextlib.closing` and friends work."""
        self.cancel()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cancel()


class Client:
    """Blocking CodeBeaker client over one gRPC channel.

    `address` defaults to `$CODEBEAKER_ADDRESS`, else 127.0.0.1:50051.
    `timeout` (seconds) is the deadline of each call that does not pass its
    own; None means no deadline. Use as a context manager, or call `close()`.

    Plaintext unless `tls=True` (the system's trusted roots), `ca=` (a PEM
    path or bytes to trust instead), `cert=` and `key=` (a client certificate,
    for mTLS; either implies TLS) or `credentials=` (grpc's own). `token=`
    (default `$CODEBEAKER_TOKEN`) is sent as `authorization: Bearer <token>`
    and `metadata=` pairs with every call. `channel=` uses a ready channel
    instead (then only `metadata`/`token` apply, and `close()` leaves it open).
    A bad argument or an unreadable PEM file raises ValueError.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float | None = None,
        options: ChannelOptions | None = None,
        tls: bool = False,
        ca: PemSource | None = None,
        cert: PemSource | None = None,
        key: PemSource | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        token: str | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        self._connection = connection(
            address,
            tls=tls,
            ca=ca,
            cert=cert,
            key=key,
            credentials=credentials,
            metadata=metadata,
            token=token,
            options=options,
            own_channel=channel is None,
        )
        self.address = self._connection.address
        self.timeout = timeout
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else self._connection.open()
        self._stub: pb_grpc.ExecutionServiceStub = pb_grpc.ExecutionServiceStub(self._channel)
        self._operations = OperationCalls(self._channel, self._connection, lambda: self.timeout)
        self._sessions = SessionCalls(self._channel, self._connection, lambda: self.timeout)

    def execute(
        self,
        language: str,
        source: Source | None = None,
        *,
        timeout: float | None = None,
        **options: Unpack[ExecutionOptions],
    ) -> ExecutionResult:
        """Run a program to completion and return its verdict and buffered output.

        `options` describe the program (`ExecutionOptions`: files, entrypoint,
        stdin, args, env, limits, compile_limits, output_files, test_cases,
        version, request_id, packages); `timeout` is this call's deadline in seconds.
        """
        spec = build_spec(language, source, **options)
        with traced_call("Execute", self.address) as call:
            with translate_rpc_errors():
                future = self._stub.Execute.future(
                    pb.ExecuteRequest(spec=spec),
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(call.metadata),
                )
                try:
                    response: pb.ExecuteResponse = future.result()
                except BaseException:
                    # Interrupted (Ctrl-C, ...): don't leave the program running.
                    future.cancel()
                    raise
            result = result_from_proto(response.result)
            call.result(result)
        return result

    def stream(
        self,
        language: str,
        source: Source | None = None,
        *,
        timeout: float | None = None,
        **options: Unpack[ExecutionOptions],
    ) -> ExecutionStream:
        """Run a program, yielding its output as it is produced, then the verdict.

        Takes the same `options` as `execute`. Output events say which stage
        (compile or run) and test case wrote them; a `StageFinished` event
        follows the compile and each test case.
        """
        spec = build_spec(language, source, **options)
        span = CallSpan("ExecuteStream", self.address)
        try:
            with translate_rpc_errors():
                call: _StreamCall = self._stub.ExecuteStream(
                    pb.ExecuteStreamRequest(spec=spec),
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(span.metadata),
                )
        except BaseException as error:
            span.end(error)
            raise
        return ExecutionStream(call, span)

    def submit(
        self,
        language: str,
        source: Source | None = None,
        *,
        timeout: float | None = None,
        **options: Unpack[ExecutionOptions],
    ) -> Operation:
        """Queue a program on the server and return at once with its `Operation`.

        Takes the same `options` as `execute`; `op.wait()` returns what `execute`
        would have. `request_id` is also the idempotency key here: submitting
        again with the same one returns the operation the first submit created
        (so a submit whose answer was lost can be retried safely). A full queue
        raises `ResourceExhaustedError` with its `retry_after` hint.
        """
        spec = build_spec(language, source, **options)
        request = pb.SubmitExecutionRequest(spec=spec, request_id=spec.request_id)
        with traced_call("SubmitExecution", self.address) as call:
            with translate_rpc_errors():
                message = self._stub.SubmitExecution(
                    request,
                    timeout=deadline(timeout, self.timeout),
                    metadata=self._connection.with_call(call.metadata),
                )
            snapshot = snapshot_from_proto(message)
            call.operation(snapshot.name, snapshot.state.value)
        return Operation(snapshot, self._operations)

    def get_operation(self, name: str, *, timeout: float | None = None) -> Operation:
        """The operation called `name` (`operations/ID`, or the ID alone), as it is now.

        `NotFoundError` when there is none (or it is another tenant's, or was
        deleted, or its result outlived the server's retention)."""
        return Operation(self._operations.get(operation_name(name), timeout), self._operations)

    def list_operations(
        self,
        *,
        state: OperationState | str | None = None,
        done: bool | None = None,
        page_size: int = 100,
        timeout: float | None = None,
    ) -> Iterator[Operation]:
        """The caller's operations, newest first, in `state` and/or (not) `done`.

        Pages of `page_size` are fetched as the iteration reaches them;
        `timeout` is each page's deadline.
        """
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        return iterate_operations(self._operations, list_filter(state, done), page_size, timeout)

    def create_session(
        self,
        language: str,
        *,
        version: str | None = None,
        limits: Limits | None = None,
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        idle_timeout: float | None = None,
        lifetime: float | None = None,
        disk_bytes: int | None = None,
        cpus: float | None = None,
        session_id: str | None = None,
        request_id: str | None = None,
        packages: Packages = (),
        timeout: float | None = None,
    ) -> Session:
        """Start a session: a sandbox that keeps its files and processes between calls.

        `limits` bound the whole session (`memory_bytes`, `max_processes`) and
        are each Exec's defaults (`wall_time`, `cpu_time`, `max_output_bytes`);
        `env` is every Exec's environment; `idle_timeout` and `lifetime`
        (seconds) end it after that long without a call, or after that long in
        all; `disk_bytes` sizes its working directory, `cpus` caps its CPU. None
        (or 0) means the server's default. `session_id` picks its id (4-63 of
        a-z, 0-9 and -, starting with a letter); `request_id` makes the create
        idempotent (the same key returns the same session). `packages` are
        installed for it from the server's allow-list (see `Packages`).
        """
        request = create_request(
            language,
            version=version,
            limits=limits,
            env=env,
            labels=labels,
            idle_timeout=idle_timeout,
            lifetime=lifetime,
            disk_bytes=disk_bytes,
            cpus=cpus,
            session_id=session_id,
            request_id=request_id,
            packages=packages,
        )
        stub = self._sessions.stub
        message = self._sessions.unary("CreateSession", stub.CreateSession, request, timeout)
        return Session(info_from_proto(message), self._sessions)

    def get_session(self, name: str, *, timeout: float | None = None) -> Session:
        """The session called `name` (`sessions/ID`, or the ID alone), as it is now;
        `NotFoundError` when there is none (or it is not the caller's)."""
        return Session(self._sessions.get(session_name(name), timeout), self._sessions)

    def list_sessions(
        self,
        *,
        states: Iterable[SessionState | str] | None = None,
        labels: Mapping[str, str] | None = None,
        page_size: int | None = None,
        timeout: float | None = None,
    ) -> Iterator[SessionInfo]:
        """The caller's sessions in one of `states` (default: every live one) carrying
        every one of `labels`; pages are fetched as the iteration reaches them."""
        first = list_request(states, labels, page_size, "")
        return iterate_sessions(self._sessions, first, timeout)

    def watch_sessions(
        self,
        *,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        usage_interval: float | None = None,
        usage: bool = True,
        timeout: float | None = None,
    ) -> SessionWatch:
        """Life-cycle events (and usage samples every `usage_interval` seconds,
        unless `usage=False`) of one session or of all carrying `labels`, as they
        happen; endless: `close()` it or leave its `with` block."""
        request = watch_request(name, labels, usage_interval, usage)
        return self._sessions.watch(request, timeout)

    def runtimes(self, *, timeout: float | None = None) -> list[Runtime]:
        """The languages the server can run."""
        with traced_call("ListRuntimes", self.address) as call, translate_rpc_errors():
            response: pb.ListRuntimesResponse = self._stub.ListRuntimes(
                pb.ListRuntimesRequest(),
                timeout=deadline(timeout, self.timeout),
                metadata=self._connection.with_call(call.metadata),
            )
        return runtimes_from_proto(response)

    def close(self) -> None:
        """Close the channel (RPCs still running on it are cancelled), unless the
        caller passed it as `channel=`: the caller closes what it made."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(address={self.address!r}, timeout={self.timeout!r})"
