"""`Operation`: the blocking handle of a submitted execution, and the
`google.longrunning.Operations` calls behind it.

`Client.submit` queues a program and returns at once with an `Operation`;
`wait()` blocks until the server has run it and returns the same
`ExecutionResult` `execute` returns (or raises the error `execute` would
have raised). The operation lives on the server, not in this object: another
process can pick it up by name (`Client.get_operation`), and dropping the
handle neither cancels nor deletes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Self, cast

import grpc
from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped, unused-ignore]

from codebeaker.client._channel import Connection
from codebeaker.client._operation_convert import (
    COLLECTION,
    OperationMessage,
    OperationsPage,
    Snapshot,
    outcome,
    snapshot_from_proto,
)
from codebeaker.client._settings import deadline
from codebeaker.client._tracing import OPERATIONS_SERVICE, traced_call
from codebeaker.client._wait_clock import WAIT_SLACK, WaitClock, wait_duration
from codebeaker.client.errors import CodeBeakerError, UnavailableError, translate_rpc_errors
from codebeaker.client.types import ExecutionResult, OperationMetadata, OperationState


class OperationCalls:
    """The Operations RPCs over one client's channel, with its metadata and deadline."""

    def __init__(
        self,
        channel: grpc.Channel,
        connection: Connection,
        default_timeout: Callable[[], float | None],
    ) -> None:
        self._stub = operations_pb2_grpc.OperationsStub(channel)
        self._connection = connection
        self._default_timeout = default_timeout

    def get(self, name: str, timeout: float | None) -> Snapshot:
        return self._read("GetOperation", operations_pb2.GetOperationRequest(name=name), timeout)

    def wait(self, name: str, seconds: float) -> Snapshot:
        """One WaitOperation: the server answers when done or after `seconds`."""
        request = operations_pb2.WaitOperationRequest(name=name, timeout=wait_duration(seconds))
        return self._read("WaitOperation", request, seconds + WAIT_SLACK)

    def cancel(self, name: str, timeout: float | None) -> None:
        self._call("CancelOperation", operations_pb2.CancelOperationRequest(name=name), timeout)

    def delete(self, name: str, timeout: float | None) -> None:
        self._call("DeleteOperation", operations_pb2.DeleteOperationRequest(name=name), timeout)

    def list_page(
        self, filter_: str, page_size: int, page_token: str, timeout: float | None
    ) -> tuple[list[Snapshot], str]:
        request = operations_pb2.ListOperationsRequest(
            name=COLLECTION, filter=filter_, page_size=page_size, page_token=page_token
        )
        page = cast(OperationsPage, self._call("ListOperations", request, timeout))
        return [snapshot_from_proto(m) for m in page.operations], page.next_page_token

    def _read(self, method: str, request: object, timeout: float | None) -> Snapshot:
        return snapshot_from_proto(cast(OperationMessage, self._call(method, request, timeout)))

    def _call(self, method: str, request: object, timeout: float | None) -> object:
        address = self._connection.address
        with traced_call(method, address, OPERATIONS_SERVICE) as span, translate_rpc_errors():
            future = getattr(self._stub, method).future(
                request,
                timeout=deadline(timeout, self._default_timeout()),
                metadata=self._connection.with_call(span.metadata),
            )
            try:
                return future.result()
            except BaseException:
                # Interrupted (Ctrl-C, ...) while the server holds the call.
                future.cancel()
                raise


class Operation:
    """A submitted execution on the server: its state now, and its outcome once done.

    `name`, `done`, `state`, `metadata` and `error` are what the server said at
    the last call (`submit`, `refresh`, `wait`, `cancel`); `refresh()` asks again.
    `timeout` of `refresh`, `cancel` and `delete` is that call's deadline (default:
    the client's); `wait`'s is how long to wait in all.
    """

    def __init__(self, snapshot: Snapshot, calls: OperationCalls) -> None:
        self._snapshot = snapshot
        self._calls = calls

    @property
    def name(self) -> str:
        """`operations/{id}`: enough to find it again from anywhere."""
        return self._snapshot.name

    @property
    def done(self) -> bool:
        return self._snapshot.done

    @property
    def state(self) -> OperationState:
        return self._snapshot.state

    @property
    def metadata(self) -> OperationMetadata:
        return self._snapshot.metadata

    @property
    def error(self) -> CodeBeakerError | None:
        """Why it did not run (FAILED) or its cancellation (CANCELLED); None otherwise."""
        return self._snapshot.error

    def refresh(self, *, timeout: float | None = None) -> Self:
        """Ask the server for the operation's state now (GetOperation)."""
        self._snapshot = self._calls.get(self.name, timeout)
        return self

    def wait(self, timeout: float | None = None) -> ExecutionResult:
        """Block until the operation is done; return the program's verdict.

        Raises what `execute` would have: the operation's error when the service
        could not run it (`UnavailableError`, ...), `ExecutionCancelledError`
        when it was cancelled. After `timeout` seconds (None: no limit) without
        it being done, raises `WaitTimeoutError`: the operation goes on.
        """
        clock = WaitClock(self.name, timeout)
        while not self._snapshot.done:
            seconds = clock.next_wait(self.state)
            try:
                self._snapshot = self._calls.wait(self.name, seconds)
            except UnavailableError as error:
                time.sleep(clock.outage(error))  # a restarting server: try again
                continue
            if not self._snapshot.done and (pause := clock.pause()):
                time.sleep(pause)
        return outcome(self._snapshot)

    def result(self, timeout: float | None = None) -> ExecutionResult:
        """The verdict: `wait(timeout)`, named as `concurrent.futures.Future.result`."""
        return self.wait(timeout)

    def cancel(self, *, timeout: float | None = None) -> None:
        """Ask the server to cancel it, then read its state back.

        A queued operation is CANCELLED at once and never runs; a running one has
        `metadata.cancel_requested` set and ends CANCELLED once its sandbox is
        stopped (`wait()` then raises `ExecutionCancelledError`). A done one is
        left as it is.
        """
        self._calls.cancel(self.name, timeout)
        self.refresh(timeout=timeout)

    def delete(self, *, timeout: float | None = None) -> None:
        """Forget it on the server (its result too); it is NOT_FOUND from then on.

        Deleting is not cancelling: a running operation is not stopped."""
        self._calls.delete(self.name, timeout)

    def __repr__(self) -> str:
        return f"Operation(name={self.name!r}, state={self.state.value})"


def iterate_operations(
    calls: OperationCalls, filter_: str, page_size: int, timeout: float | None
) -> Iterator[Operation]:
    """Every operation the filter selects, newest first, page after page."""
    token = ""
    while True:
        page, token = calls.list_page(filter_, page_size, token, timeout)
        for snapshot in page:
            yield Operation(snapshot, calls)
        if not token:
            return
