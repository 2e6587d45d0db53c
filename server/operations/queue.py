"""The queue as the application wires it: the store, its workers, the service, the housekeeping.

`Queue.open` picks the store from `--queue` (`sqlite`: the embedded one under
`--state-dir`; `redis://...`: the shared one, imported only then). While the
server runs, one housekeeping loop refreshes the queue gauges every second,
deletes finished operations older than `--result-ttl`, notices the store
failing or coming back (readiness says why), and applies the worker count from
the settings file (see `control.py`) when it changes, or at once on `reload()`
(SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from codebeaker.server.admission import Admission
from codebeaker.server.executions import Executions
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.operations import control
from codebeaker.server.operations.config import SQLITE, QueueConfig
from codebeaker.server.operations.runner import JobRunner
from codebeaker.server.operations.service import OperationsService
from codebeaker.server.operations.sqlite_store import SqliteOperationStore
from codebeaker.server.operations.store import OperationStore, StoreUnavailable
from codebeaker.server.operations.workers import PoolSettings, WorkerPool
from codebeaker.server.quotas import Tenancy
from codebeaker.server.requests import RequestRules

log = logging.getLogger("codebeaker.operations")
HOUSEKEEPING_INTERVAL = 1.0


def open_store(config: QueueConfig, state_dir: Path) -> OperationStore:
    if config.queue == SQLITE:
        return SqliteOperationStore(state_dir)
    # Imported here: the redis client is only loaded by a server that uses it.
    from codebeaker.server.operations.redis_store import RedisOperationStore

    return RedisOperationStore(config.queue, result_ttl=config.result_ttl)


class Queue:
    def __init__(
        self,
        config: QueueConfig,
        state_dir: Path,
        store: OperationStore,
        *,
        executions: Executions,
        rules: Callable[[], RequestRules],
        tenancy: Tenancy | None,
        admission: Admission,
        metrics: Metrics,
        on_health: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.store = store
        self._metrics = metrics
        self._clock = clock
        self._on_health = on_health
        settings = PoolSettings(
            workers=control.read_workers(state_dir) or config.queue_workers,
            slots=config.queue_slots(admission.limit),
            lease=config.queue_lease,
            max_attempts=config.queue_max_attempts,
        )
        self.pool = WorkerPool(
            store, JobRunner(executions, rules, tenancy), settings, admission, metrics, clock=clock
        )
        self.service = OperationsService(
            store, rules, tenancy, config, metrics, wake=self.pool.wake
        )
        self.problem: str | None = None  # why the store does not answer, while it does not
        self._settings_seen = control.settings_stamp(state_dir)
        self._housekeeping: asyncio.Task[None] | None = None
        self._last_expiry = 0.0
        self._lease_expiries = 0

    def start(self) -> None:
        self.pool.start()
        self._housekeeping = asyncio.create_task(self._keep_house())

    def reload(self) -> int:
        """Apply the settings file's worker count now (SIGHUP); the count in force."""
        self._settings_seen = control.settings_stamp(self.state_dir)
        workers = control.read_workers(self.state_dir)
        if workers is not None and workers != self.pool.settings.workers:
            before = self.pool.settings.workers
            self.pool.resize(workers)
            message = f"queue workers: {before} -> {workers}"
            event(log, logging.INFO, "queue.resized", message, workers=workers, before=before)
        return self.pool.settings.workers

    async def housekeeping(self) -> None:
        """One round: gauges, expiry, store health, the settings file."""
        if control.settings_stamp(self.state_dir) != self._settings_seen:
            self.reload()
        try:
            await self.store.ping()  # the store's own health (Redis: warns once if not durable)
            stats = await self.store.stats()
            now = self._clock()
            if now - self._last_expiry >= min(60.0, self.config.result_ttl / 4):
                self._last_expiry = now
                expired = await self.store.expire(now - self.config.result_ttl)
                if expired:
                    message = f"{expired} finished operations expired"
                    event(log, logging.INFO, "operation.expired", message, count=expired)
        except StoreUnavailable as error:
            self._set_problem(f"the operation store does not answer: {error}")
            return
        self._set_problem(None)
        m = self._metrics
        m.operations_queued.set(stats.depth)
        m.operations_oldest_queued.set(stats.oldest_queued_age)
        m.operations_running.set(stats.running)
        if stats.lease_expiries > self._lease_expiries:
            m.operations_lease_expiries.inc(stats.lease_expiries - self._lease_expiries)
        self._lease_expiries = stats.lease_expiries

    def _set_problem(self, problem: str | None) -> None:
        self._metrics.operations_store_up.set(0 if problem else 1)
        if problem == self.problem:
            return
        self.problem = problem
        if problem is None:
            event(log, logging.INFO, "queue.store_available", "the operation store answers again")
        else:
            event(log, logging.WARNING, "queue.store_unavailable", problem, reason=problem)
        self._on_health()

    async def _keep_house(self) -> None:
        while True:
            try:
                await self.housekeeping()
            except Exception:  # never let housekeeping die
                log.exception("queue housekeeping failed")
            await asyncio.sleep(HOUSEKEEPING_INTERVAL)  # a period, not a synchronisation

    async def stop(self, grace: float) -> None:
        await self.pool.stop(grace)
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping
        await self.store.close()
