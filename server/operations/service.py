"""SubmitExecution and the google.longrunning.Operations RPCs: protobuf in, store calls, out.

Every call is the calling tenant's ("" on a server without tenants): another
tenant's operation is NOT_FOUND like one that never existed. A submit validates
the spec exactly as Execute does (`build_job`), has the store check the
tenant's `max_queued_operations` as it inserts (one atomic step), and stores
the serialized spec with the W3C trace context of the submit's span, so the
span that runs it continues the submitter's trace. Errors are domain exceptions, mapped by the
one error interceptor.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.protobuf import empty_pb2
from grpc import aio
from opentelemetry import propagate

from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.server import caller
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.operations.config import QueueConfig
from codebeaker.server.operations.convert import operation_id, operation_message, parse_filter
from codebeaker.server.operations.store import OperationRecord, OperationStore, TenantQueueFull
from codebeaker.server.quotas import Tenancy
from codebeaker.server.requests import MAX_REQUEST_ID, RequestRules, build_job
from codebeaker.v1 import execution_pb2 as pb

log = logging.getLogger("codebeaker.operations")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_WAIT = 600.0  # seconds a WaitOperation waits at most (less if its deadline is sooner)
_Context = aio.ServicerContext[object, object]


class OperationsService:
    def __init__(
        self,
        store: OperationStore,
        rules: Callable[[], RequestRules],
        tenancy: Tenancy | None,
        config: QueueConfig,
        metrics: Metrics,
        wake: Callable[[], None],
    ) -> None:
        self._store = store
        self._rules = rules
        self._tenancy = tenancy
        self._config = config
        self._metrics = metrics
        self._wake = wake

    # -- ExecutionService.SubmitExecution -----------------------------------------------------

    async def submit(self, request: pb.SubmitExecutionRequest) -> operations_pb2.Operation:
        job = build_job(request.spec, self._rules())
        request_id = request.request_id
        if len(request_id) > MAX_REQUEST_ID or not request_id.isprintable():
            raise InvalidRequest(
                "request_id",
                f"at most {MAX_REQUEST_ID} printable characters",
                reason=Reason.VALUE_INVALID,
            )
        tenant = caller.current_tenant()
        name = tenant.name if tenant is not None else ""
        quota = tenant.quotas.max_queued_operations if tenant is not None else None
        carrier: dict[str, str] = {}
        propagate.inject(carrier)
        try:
            # The store checks the quota and inserts in one step (a retried submit gets its
            # operation back even at the quota), so concurrent submits never pass it together.
            record, created = await self._store.submit(
                name,
                request_id,
                request.spec.SerializeToString(),
                carrier,
                max_queued=self._config.max_queued,
                tenant_max_queued=quota,
            )
        except TenantQueueFull as full:
            if tenant is not None and self._tenancy is not None:
                self._tenancy.check_queued_operations(tenant, full.queued)  # raises QuotaExceeded
            raise
        caller.note(resource=record.name)
        if created:
            self._metrics.operations_submitted.inc()
            self._wake()
            event(
                log,
                logging.INFO,
                "operation.queued",
                f"{record.name} queued ({job.language.id})",
                operation=record.name,
                tenant=name,
                request_id=request_id,
                language=job.language.id,
            )
        return operation_message(record, job.language.id)

    # -- google.longrunning.Operations --------------------------------------------------------

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: _Context
    ) -> operations_pb2.Operation:
        record = await self._store.get(_tenant(), self._id(request.name))
        return self._message(record)

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: _Context
    ) -> operations_pb2.ListOperationsResponse:
        if request.name not in ("", "operations"):
            raise InvalidRequest(
                "name", "the collection is 'operations' (or empty)", reason=Reason.VALUE_INVALID
            )
        if request.page_size < 0:
            raise InvalidRequest(
                "page_size", "must not be negative", reason=Reason.LIMIT_NOT_POSITIVE
            )
        size = min(request.page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
        records, token = await self._store.list(
            _tenant(),
            states=parse_filter(request.filter),
            page_size=size,
            page_token=request.page_token,
        )
        return operations_pb2.ListOperationsResponse(
            operations=[self._message(record) for record in records], next_page_token=token
        )

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: _Context
    ) -> empty_pb2.Empty:
        tenant = _tenant()
        before = await self._store.get(tenant, self._id(request.name))
        record = await self._store.cancel(tenant, before.id)
        if not before.done:
            what = "cancelled" if record.done else "cancel_requested"
            event(
                log,
                logging.INFO,
                f"operation.{what}",
                f"{record.name} {what.replace('_', ' ')}",
                operation=record.name,
                tenant=tenant,
                request_id=record.request_id,
                attempt=record.attempts,
            )
            if record.done:
                self._metrics.operations_finished.labels(record.state.value).inc()
        return empty_pb2.Empty()

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: _Context
    ) -> empty_pb2.Empty:
        tenant = _tenant()
        id = self._id(request.name)
        await self._store.delete(tenant, id)
        message = f"operations/{id} deleted"
        event(log, logging.INFO, "operation.deleted", message, operation=f"operations/{id}")
        return empty_pb2.Empty()

    async def WaitOperation(
        self, request: operations_pb2.WaitOperationRequest, context: _Context
    ) -> operations_pb2.Operation:
        id = self._id(request.name)
        if request.HasField("timeout"):
            timeout = request.timeout.ToNanoseconds() / 1e9
            if timeout < 0:
                raise InvalidRequest(
                    "timeout", "must not be negative", reason=Reason.LIMIT_NOT_POSITIVE
                )
        else:
            timeout = MAX_WAIT
        remaining: float | None = context.time_remaining()
        if remaining is not None:  # answer before the caller's deadline, not after it
            timeout = min(timeout, max(remaining - 0.05, 0.0))
        record = await self._store.wait(_tenant(), id, min(timeout, MAX_WAIT))
        return self._message(record)

    def _message(self, record: OperationRecord) -> operations_pb2.Operation:
        language = pb.ExecutionSpec.FromString(record.spec).language
        # A language this server no longer has stays as it was asked for.
        with contextlib.suppress(InvalidRequest):
            language = self._rules().catalog.resolve(language, "spec.language").id
        return operation_message(record, language)

    def _id(self, name: str) -> str:
        id = operation_id(name)
        caller.note(resource=f"operations/{id}")
        return id


def _tenant() -> str:
    tenant = caller.current_tenant()
    return tenant.name if tenant is not None else ""
