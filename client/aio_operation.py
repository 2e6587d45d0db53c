"""`AsyncOperation`: the asyncio handle of a submitted execution, and the
`google.longrunning.Operations` calls behind it (grpc.aio).

The asyncio twin of `codebeaker.client.operation`: the same names and
semantics, with coroutines. Cancelling the task that awaits `wait()` cancels
the pending WaitOperation call only: the operation itself goes on (use
`cancel()` for that).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Self, cast

from google.longrunning import operations_pb2, operations_pb2_grpc  # type: ignore[import-untyped, unused-ignore]
from grpc import aio

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


class AsyncOperationCalls:
    """The Operations RPCs over one async client's channel, with its metadata and deadline."""

    def __init__(
        self,
        channel: aio.Channel,
        connection: Connection,
        default_timeout: Callable[[], float | None],
    ) -> None:
        self._stub = operations_pb2_grpc.OperationsStub(channel)
        self._connection = connection
        self._default_timeout = default_timeout

    async def get(self, name: str, timeout: float | None) -> Snapshot:  # noqa: ASYNC109
        request = operations_pb2.GetOperationRequest(name=name)
        return await self._read("GetOperation", request, timeout)

    async def wait(self, name: str, seconds: float) -> Snapshot:
        """One WaitOperation: the server answers when done or after `seconds`."""
        request = operations_pb2.WaitOperationRequest(name=name, timeout=wait_duration(seconds))
        return await self._read("WaitOperation", request, seconds + WAIT_SLACK)

    async def cancel(self, name: str, timeout: float | None) -> None:  # noqa: ASYNC109
        request = operations_pb2.CancelOperationRequest(name=name)
        await self._call("CancelOperation", request, timeout)

    async def delete(self, name: str, timeout: float | None) -> None:  # noqa: ASYNC109
        request = operations_pb2.DeleteOperationRequest(name=name)
        await self._call("DeleteOperation", request, timeout)

    async def list_page(
        self,
        filter_: str,
        page_size: int,
        page_token: str,
        timeout: float | None,  # noqa: ASYNC109
    ) -> tuple[list[Snapshot], str]:
        request = operations_pb2.ListOperationsRequest(
            name=COLLECTION, filter=filter_, page_size=page_size, page_token=page_token
        )
        page = cast(OperationsPage, await self._call("ListOperations", request, timeout))
        return [snapshot_from_proto(m) for m in page.operations], page.next_page_token

    async def _read(self, method: str, request: object, timeout: float | None) -> Snapshot:  # noqa: ASYNC109
        message = cast(OperationMessage, await self._call(method, request, timeout))
        return snapshot_from_proto(message)

    async def _call(self, method: str, request: object, timeout: float | None) -> object:  # noqa: ASYNC109
        address = self._connection.address
        with traced_call(method, address, OPERATIONS_SERVICE) as span, translate_rpc_errors():
            response: object = await getattr(self._stub, method)(
                request,
                timeout=deadline(timeout, self._default_timeout()),
                metadata=self._connection.with_call(span.metadata),
            )
            return response


class AsyncOperation:
    """A submitted execution on the server: its state now, and its outcome once done.

    `Operation`'s asyncio twin: `name`, `done`, `state`, `metadata` and `error`
    are what the server said at the last call; `refresh`, `wait`, `result`,
    `cancel` and `delete` are coroutines.
    """

    def __init__(self, snapshot: Snapshot, calls: AsyncOperationCalls) -> None:
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

    async def refresh(self, *, timeout: float | None = None) -> Self:  # noqa: ASYNC109
        """Ask the server for the operation's state now (GetOperation)."""
        self._snapshot = await self._calls.get(self.name, timeout)
        return self

    async def wait(self, timeout: float | None = None) -> ExecutionResult:  # noqa: ASYNC109
        """Wait until the operation is done; return the program's verdict.

        As `Operation.wait`: the operation's error is raised when the service could
        not run it, `ExecutionCancelledError` when it was cancelled, and
        `WaitTimeoutError` after `timeout` seconds (None: no limit) without it done.
        """
        clock = WaitClock(self.name, timeout)
        while not self._snapshot.done:
            seconds = clock.next_wait(self.state)
            try:
                self._snapshot = await self._calls.wait(self.name, seconds)
            except UnavailableError as error:
                await asyncio.sleep(clock.outage(error))
                continue
            if not self._snapshot.done and (pause := clock.pause()):
                await asyncio.sleep(pause)
        return outcome(self._snapshot)

    async def result(self, timeout: float | None = None) -> ExecutionResult:  # noqa: ASYNC109
        """The verdict: `wait(timeout)`, named as `concurrent.futures.Future.result`."""
        return await self.wait(timeout)

    async def cancel(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Ask the server to cancel it, then read its state back (see `Operation.cancel`)."""
        await self._calls.cancel(self.name, timeout)
        await self.refresh(timeout=timeout)

    async def delete(self, *, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Forget it on the server (its result too); a running one is not stopped."""
        await self._calls.delete(self.name, timeout)

    def __repr__(self) -> str:
        return f"AsyncOperation(name={self.name!r}, state={self.state.value})"


async def iterate_operations(
    calls: AsyncOperationCalls,
    filter_: str,
    page_size: int,
    timeout: float | None,  # noqa: ASYNC109
) -> AsyncIterator[AsyncOperation]:
    """Every operation the filter selects, newest first, page after page."""
    token = ""
    while True:
        page, token = await calls.list_page(filter_, page_size, token, timeout)
        for snapshot in page:
            yield AsyncOperation(snapshot, calls)
        if not token:
            return
