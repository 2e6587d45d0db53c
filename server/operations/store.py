"""The queue store's contract: what the embedded SQLite store and the Redis store both honour.

A store keeps one `OperationRecord` per submitted execution and moves it through
its states: QUEUED → RUNNING → SUCCEEDED | FAILED | CANCELLED (QUEUED may also go
straight to CANCELLED). Work is at-least-once: a worker `claim`s a job with a
lease (wall-clock seconds) and `renew`s it while it runs; a lease that runs out
(its worker died) hands the job to the next `claim`, until it has been claimed
`max_attempts` times, when it fails with the reason instead.

Every read, cancel and delete is scoped to a tenant ("" without tenants): another
tenant's operation is `NotFound`, exactly like one that does not exist. Specs,
results and errors are stored as serialized protobuf bytes, so the store knows
no protobuf. Every method may raise `StoreUnavailable` (the store cannot be
reached); the server answers UNAVAILABLE and its readiness goes NOT_SERVING.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from codebeaker.runtimes.errors import CapacityExhausted, NotFound, Reason, Unavailable

__all__ = [
    "DONE_STATES",
    "NotFound",
    "OperationRecord",
    "OperationState",
    "OperationStore",
    "QueueFull",
    "QueueStats",
    "StoreUnavailable",
    "TenantQueueFull",
    "operation_not_found",
]


class OperationState(StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self in DONE_STATES


DONE_STATES = frozenset({OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED})


@dataclass(frozen=True)
class OperationRecord:
    id: str  # opaque, URL-safe; the API name is f"operations/{id}"
    tenant: str  # "" without tenants
    request_id: str  # idempotency key, "" when none
    state: OperationState
    spec: bytes  # serialized codebeaker.v1.ExecutionSpec, validated before submit
    trace_context: Mapping[str, str]  # W3C carrier of the submitter's span (traceparent, ...)
    create_time: float  # unix seconds
    start_time: float | None = None  # the latest claim's
    end_time: float | None = None
    attempts: int = 0  # claims so far
    result: bytes | None = None  # serialized ExecuteResponse when SUCCEEDED
    error: bytes | None = None  # serialized google.rpc.Status when FAILED (or CANCELLED)
    cancel_requested: bool = False
    worker: str = ""  # lease holder ("" when none)
    lease_expires: float | None = None

    @property
    def done(self) -> bool:
        return self.state.done

    @property
    def name(self) -> str:
        return f"operations/{self.id}"


@dataclass(frozen=True)
class QueueStats:
    depth: int  # QUEUED records
    oldest_queued_age: float  # seconds; 0.0 when none is queued
    running: int  # RUNNING records
    # Totals a store counts as it goes (since it was opened, or for all servers on
    # a shared store); the metrics export them as counters where they grow.
    lease_expiries: int = 0
    by_state: Mapping[OperationState, int] = field(default_factory=dict)


class QueueFull(CapacityExhausted):
    """More than `max_queued` operations are waiting; retry after `retry_after` seconds."""

    reason = Reason.QUEUE_FULL


class TenantQueueFull(QueueFull):
    """The tenant has `queued` operations QUEUED, its queued-operations quota (the server
    answers with the tenant's QuotaExceeded)."""

    def __init__(self, tenant: str, queued: int) -> None:
        super().__init__(f"tenant {tenant!r} has {queued} operations queued", 1.0)
        self.tenant = tenant
        self.queued = queued


class StoreUnavailable(Unavailable):
    """The operation store cannot be reached (Redis down, the database unwritable)."""

    reason = Reason.QUEUE_UNAVAILABLE


def operation_not_found(id: str) -> NotFound:
    """The one NotFound for an absent operation (also another tenant's)."""
    return NotFound(f"operations/{id}", f"no operation operations/{id}")


class OperationStore(Protocol):
    """All async; every method may raise StoreUnavailable. Times are wall-clock unix seconds."""

    async def submit(
        self,
        tenant: str,
        request_id: str,
        spec: bytes,
        trace_context: Mapping[str, str],
        *,
        max_queued: int,
        tenant_max_queued: int | None = None,
    ) -> tuple[OperationRecord, bool]:
        """A new QUEUED record and True; or, for a (tenant, request_id) seen while that record is
        retained (request_id != ""), the earlier record and False (whatever the limits: a retry
        is not more work). `max_queued` or more QUEUED (all tenants) → QueueFull; max_queued <= 0
        means no limit. `tenant_max_queued` or more of the tenant's QUEUED → TenantQueueFull;
        None means no limit. The checks and the insert are one atomic step, so concurrent
        submits (on any server sharing the store) never pass a limit together."""
        ...

    async def get(self, tenant: str, id: str) -> OperationRecord:
        """The record; NotFound if absent or another tenant's."""
        ...

    async def list(
        self,
        tenant: str,
        *,
        states: frozenset[OperationState] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[OperationRecord], str]:
        """The tenant's records in `states` (None: all), newest first, at most page_size of them,
        and the token of the next page ("" on the last). A token the store did not issue →
        InvalidRequest(field="page_token")."""
        ...

    async def count_queued(self, tenant: str) -> int:
        """The tenant's QUEUED records (what submit's tenant_max_queued counts)."""
        ...

    async def claim(
        self, worker: str, lease_seconds: float, max_attempts: int
    ) -> OperationRecord | None:
        """The oldest QUEUED record (or RUNNING with an expired lease) made RUNNING for `worker`,
        attempts+1, lease set; None when there is none. A RUNNING record whose lease expired
        becomes, instead of being handed out again: CANCELLED if cancel_requested; FAILED with
        error None if it had been claimed max_attempts times already (the server renders the
        reason from `attempts`: it ended its worker that many times). Each lease that expires
        counts in QueueStats.lease_expiries."""
        ...

    async def renew(self, id: str, worker: str, lease_seconds: float) -> OperationRecord | None:
        """The lease extended; the record shows cancel_requested. None: `worker` no longer holds
        it (the caller must stop the run and not finish it)."""
        ...

    async def finish(
        self,
        id: str,
        worker: str,
        state: OperationState,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
    ) -> bool:
        """RUNNING → `state` (a done one), end_time set, lease cleared; False if `worker` no longer
        holds the lease (nothing changes)."""
        ...

    async def release(self, id: str, worker: str) -> OperationState | None:
        """Hand back unrun work (graceful stop): QUEUED again, attempts-1, lease cleared; but
        CANCELLED (end_time set) if a cancel was requested while it ran, so it never runs again.
        The state it was left in; None (nothing changes) if `worker` no longer holds it."""
        ...

    async def cancel(self, tenant: str, id: str) -> OperationRecord:
        """QUEUED → CANCELLED at once (it never runs); RUNNING → cancel_requested (its worker stops
        the run and finishes it CANCELLED); done → unchanged. NotFound as get."""
        ...

    async def delete(self, tenant: str, id: str) -> None:
        """The record gone, whatever its state (a running one's worker loses its lease).
        NotFound as get."""
        ...

    async def wait(self, tenant: str, id: str, timeout: float) -> OperationRecord:  # noqa: ASYNC109
        """The record once done, or as it is when `timeout` seconds have passed. NotFound as get."""
        ...

    async def expire(self, older_than: float) -> int:
        """Delete the done records whose end_time < older_than; how many."""
        ...

    async def stats(self) -> QueueStats: ...

    async def ping(self) -> None:
        """Return if the store answers, else raise StoreUnavailable (readiness)."""
        ...

    async def close(self) -> None: ...
