"""Enforcing tenants' quotas: the checks every entry point calls before it does work.

`Tenancy` keeps each tenant's usage in memory (one server process; a fleet
behind a balancer enforces per process) and answers with a `QuotaExceeded`
(RESOURCE_EXHAUSTED, with a retry hint, naming the quota) or a `Lease`, the
unit of a quota the caller holds until it releases it:

- `admit_request`: every call, a token bucket (`requests_per_second`, `burst`);
- `admit_execution`: `max_executions` at once, and `cpu_seconds_per_hour`, the
  measured CPU time the tenant's executions were charged over the last hour
  (in one-minute buckets, so memory stays bounded at any rate of calls);
- `check_sessions`: `max_sessions` alive, counted by the session registry;
- `check_queued_operations`: `max_queued_operations` waiting, counted by the
  operation store (durable, and shared by every server on one Redis), so the
  count is the store's, not this process's.

The clock is injected so tests step time instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from codebeaker.runtimes.errors import QuotaExceeded
from codebeaker.server.tenancy import Tenant, Tenants

Clock = Callable[[], float]
Rejected = Callable[[str, str], None]  # (tenant, quota): told of every refusal
WINDOW = 3600.0
BUCKET = 60.0
# Retry hints where nothing says when room will be made: a running execution may end any time.
EXECUTION_RETRY = 1.0
SESSION_RETRY = 5.0
OPERATION_RETRY = 1.0


class TokenBucket:
    """`size` tokens, refilled at `rate` per second; a call takes one."""

    def __init__(self, rate: float, size: int, now: float) -> None:
        self._rate = rate
        self._size = float(size)
        self._tokens = float(size)
        self._updated = now

    def take(self, now: float) -> float:
        """0 if a token was taken, else the seconds until one will be there."""
        self._tokens = min(self._size, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self._rate


class CpuLedger:
    """CPU seconds charged in the last hour, kept in one-minute buckets.

    A charge counts for at least an hour and less than an hour and a minute:
    the window errs on the tenant's side of the limit, never the server's.
    """

    def __init__(self) -> None:
        self._buckets: deque[list[float]] = deque()  # [minute index, seconds]

    def charge(self, now: float, seconds: float) -> None:
        minute = math.floor(now / BUCKET)
        if self._buckets and self._buckets[-1][0] == minute:
            self._buckets[-1][1] += seconds
        else:
            self._buckets.append([minute, seconds])

    def used(self, now: float) -> float:
        self._expire(now)
        return sum(seconds for _, seconds in self._buckets)

    def retry_after(self, now: float, limit: float) -> float:
        """Seconds until the charges still counted fall below `limit`."""
        remaining = self.used(now)
        for minute, seconds in self._buckets:
            remaining -= seconds
            if remaining < limit:
                return max(_expiry(minute) - now, 0.0)
        return WINDOW

    def _expire(self, now: float) -> None:
        while self._buckets and _expiry(self._buckets[0][0]) <= now:
            self._buckets.popleft()


def _expiry(minute: float) -> float:
    return (minute + 1) * BUCKET + WINDOW


class Lease:
    """One unit of a quota, held until `release` (or the end of a `with` block)."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        """Give the unit back; again is harmless."""
        release, self._release = self._release, None
        if release is not None:
            release()

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ExecutionLease(Lease):
    """A running execution's slot, which is also how its CPU time is charged."""

    def __init__(self, release: Callable[[], None], charge: Callable[[float], None]) -> None:
        super().__init__(release)
        self._charge = charge

    def charge(self, cpu_seconds: float) -> None:
        self._charge(cpu_seconds)

    def __enter__(self) -> ExecutionLease:
        return self


@dataclass
class _Usage:
    bucket: TokenBucket | None
    ledger: CpuLedger
    executing: int = 0
    queued: int = 0


@dataclass(frozen=True)
class Usage:
    """A tenant's usage now, as the quotas see it."""

    executing: int
    queued_operations: int
    cpu_seconds_last_hour: float


class Tenancy:
    """Every tenant's usage, and the checks against its quotas."""

    def __init__(
        self, tenants: Tenants, clock: Clock = time.monotonic, rejected: Rejected | None = None
    ) -> None:
        self.tenants = tenants
        self._clock = clock
        self._rejected = rejected
        now = clock()
        self._usage = {
            tenant.name: _Usage(_bucket(tenant, now), CpuLedger())
            for tenant in tenants.by_name.values()
        }

    def usage(self, tenant: Tenant) -> Usage:
        usage = self._usage[tenant.name]
        return Usage(usage.executing, usage.queued, usage.ledger.used(self._clock()))

    def admit_request(self, tenant: Tenant) -> None:
        """Take a token from the tenant's bucket, or refuse the call."""
        bucket = self._usage[tenant.name].bucket
        if bucket is None:
            return
        wait = bucket.take(self._clock())
        if wait > 0:
            rate = tenant.quotas.requests_per_second
            self._refuse(
                tenant,
                "requests_per_second",
                f"tenant {tenant.name!r} is over its request rate ({rate:g}/s, burst "
                f"{tenant.burst()})",
                wait,
            )

    def admit_execution(self, tenant: Tenant) -> ExecutionLease:
        """A slot among the tenant's `max_executions`, if its CPU time of the last hour
        is under `cpu_seconds_per_hour`; charge the execution's CPU time to the lease."""
        usage = self._usage[tenant.name]
        quotas = tenant.quotas
        limit = quotas.cpu_seconds_per_hour
        if limit is not None:
            now = self._clock()
            used = usage.ledger.used(now)
            if used >= limit:
                wait = usage.ledger.retry_after(now, limit)
                self._refuse(
                    tenant,
                    "cpu_seconds_per_hour",
                    f"tenant {tenant.name!r} used {used:.3g} of its {limit:g} CPU seconds "
                    "in the last hour",
                    wait,
                )
        if quotas.max_executions is not None and usage.executing >= quotas.max_executions:
            self._refuse(
                tenant,
                "max_executions",
                f"tenant {tenant.name!r} has {usage.executing} executions running, its "
                "max_executions",
                EXECUTION_RETRY,
            )
        usage.executing += 1

        def release() -> None:
            usage.executing -= 1

        def charge(seconds: float) -> None:
            usage.ledger.charge(self._clock(), seconds)

        return ExecutionLease(release, charge)

    def check_sessions(self, tenant: Tenant, alive: int) -> None:
        """Refuse a new session when the tenant has `alive` sessions, its `max_sessions`
        or more (counted by the session registry, so a restart forgets none)."""
        limit = tenant.quotas.max_sessions
        if limit is not None and alive >= limit:
            self._refuse(
                tenant,
                "max_sessions",
                f"tenant {tenant.name!r} has {alive} sessions, its max_sessions; delete one first",
                SESSION_RETRY,
            )

    def admit_operation(self, tenant: Tenant) -> Lease:
        """One of the tenant's `max_queued_operations`; release it when the operation
        leaves the queue (it starts, or is cancelled)."""
        usage = self._usage[tenant.name]
        limit = tenant.quotas.max_queued_operations
        if limit is not None and usage.queued >= limit:
            self._refuse(
                tenant,
                "max_queued_operations",
                f"tenant {tenant.name!r} has {usage.queued} operations queued, its "
                "max_queued_operations; retry when one starts",
                OPERATION_RETRY,
            )
        usage.queued += 1

        def release() -> None:
            usage.queued -= 1

        return Lease(release)

    def check_queued_operations(self, tenant: Tenant, queued: int) -> None:
        """Refuse a submit when the tenant has `queued` operations waiting, its
        `max_queued_operations` or more."""
        limit = tenant.quotas.max_queued_operations
        if limit is not None and queued >= limit:
            self._refuse(
                tenant,
                "max_queued_operations",
                f"tenant {tenant.name!r} has {queued} operations queued, its "
                "max_queued_operations; retry when one starts",
                OPERATION_RETRY,
            )

    def _refuse(self, tenant: Tenant, quota: str, message: str, retry_after: float) -> NoReturn:
        if self._rejected is not None:
            self._rejected(tenant.name, quota)
        raise QuotaExceeded(message, retry_after, tenant.name, quota)


def _bucket(tenant: Tenant, now: float) -> TokenBucket | None:
    rate = tenant.quotas.requests_per_second
    return None if rate is None else TokenBucket(rate, tenant.burst(), now)
