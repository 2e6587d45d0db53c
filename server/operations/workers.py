"""The queue's workers: claim, run with a renewed lease, finish; resize; hand back on stop.

`WorkerPool` keeps `workers` tasks, each a loop: wait until the queue may take
one more admission slot (fewer than `slots` held by the queue, and a slot free
for it, so direct calls are never starved by a deep queue), claim the oldest
job, run it, record how it ended. While a job runs its lease is renewed every
`renew_every` seconds (at most 1 s), which is also when a cancel is noticed:
the run is cancelled (its sandbox removed) and the job finishes CANCELLED. A
lease lost (another claimed the job after ours ran out) stops the run, and
nothing is recorded.

`resize(n)` changes the number of workers at once: new ones start claiming,
surplus ones exit after the job they run, so no work is lost. `stop(grace)`
stops claiming, lets running jobs finish within `grace` seconds, then cancels
the rest and hands them back (`release`): QUEUED again, their attempt not
counted. The store being unreachable makes workers back off (up to 5 s) and
resume when it answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind

from codebeaker.server.admission import Admission
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.operations.convert import cancelled_status
from codebeaker.server.operations.runner import HandBack, JobRunner, RunOutcome
from codebeaker.server.operations.store import (
    OperationRecord,
    OperationState,
    OperationStore,
    StoreUnavailable,
)

log = logging.getLogger("codebeaker.operations")
_tracer = trace.get_tracer("codebeaker.server")
IDLE_POLL = 0.5  # seconds between claims of an empty queue (a local submit wakes workers at once)
MAX_BACKOFF = 5.0


@dataclass(frozen=True)
class PoolSettings:
    workers: int
    slots: int  # admission slots the queue may hold at once
    lease: float
    max_attempts: int

    @property
    def renew_every(self) -> float:
        return min(1.0, self.lease / 3)


class WorkerPool:
    def __init__(
        self,
        store: OperationStore,
        runner: JobRunner,
        settings: PoolSettings,
        admission: Admission,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._runner = runner
        self.settings = settings
        self._admission = admission
        self._metrics = metrics
        self._clock = clock
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._running: dict[str, asyncio.Task[RunOutcome | HandBack]] = {}
        self._handing_back: set[str] = set()
        self._held = 0
        # The idle workers' own wake-up events, by worker index: wake() sets one of them, so a
        # submit or a freed slot brings one claim, not one per idle worker.
        self._idlers: dict[int, asyncio.Event] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._next_index = 0
        metrics.operations_workers.set(settings.workers)

    @property
    def running(self) -> int:
        return len(self._running)

    def start(self) -> None:
        self.resize(self.settings.workers)

    def wake(self) -> None:
        """A job may be waiting (a submit, a slot freed): one idle worker claims now (the rest
        would find nothing, and their claims would only delay the store's other calls)."""
        for signal in self._idlers.values():  # the one idle longest first
            if not signal.is_set():
                signal.set()
                return

    def _wake_all(self) -> None:
        for signal in self._idlers.values():
            signal.set()

    def resize(self, workers: int) -> None:
        """`workers` claiming loops from now on; surplus ones end after their current job."""
        self.settings = PoolSettings(
            workers, self.settings.slots, self.settings.lease, self.settings.max_attempts
        )
        self._metrics.operations_workers.set(workers)
        self._tasks = {index: task for index, task in self._tasks.items() if not task.done()}
        for index in sorted(self._tasks)[workers:]:
            self._retiring.add(self._tasks.pop(index))  # its loop ends after its job
        while not self._stopping and len(self._tasks) < workers:
            index = self._next_index
            self._next_index += 1
            self._tasks[index] = asyncio.create_task(self._work(index))
        self._wake_all()  # new ones claim, surplus ones see they are done

    async def stop(self, grace: float) -> None:
        """Claim nothing more; running jobs get `grace` seconds, the rest are handed back."""
        self._stopping = True
        self._wake_all()
        tasks = [*self._tasks.values(), *(task for task in self._retiring if not task.done())]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(grace, 0.0))
            if late:
                self._handing_back.update(self._running)
                for run in list(self._running.values()):
                    run.cancel()
                await asyncio.wait(late)
        self._tasks.clear()
        self._retiring.clear()

    # -- one worker ---------------------------------------------------------------------------

    def _wanted(self, index: int) -> bool:
        return not self._stopping and index in self._tasks

    def _idle_from_now(self, index: int) -> asyncio.Event:
        """This worker's wake-up event, fresh, last in line: taken before it looks at the queue,
        so a wake while it looks returns its idle at once."""
        self._idlers.pop(index, None)
        signal = self._idlers[index] = asyncio.Event()
        return signal

    @staticmethod
    async def _idle(signal: asyncio.Event, seconds: float) -> None:
        """Until `signal` (the worker's wake-up event: a wake since it was taken returns at
        once) or `seconds`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await signal.wait()

    def _has_room(self) -> bool:
        free = self._admission.in_flight + self._admission.waiting < self._admission.limit
        return self._held < self.settings.slots and free

    async def _work(self, index: int) -> None:
        try:
            await self._claim_and_run(index)
        finally:
            self._idlers.pop(index, None)

    async def _claim_and_run(self, index: int) -> None:
        backoff = 0.0
        while self._wanted(index):
            signal = self._idle_from_now(index)
            if not self._has_room():
                await self._idle(signal, IDLE_POLL)
                continue
            self._held += 1  # before the claim: two workers never both take the last slot
            try:
                try:
                    record = await self._store.claim(
                        self.worker_id, self.settings.lease, self.settings.max_attempts
                    )
                except StoreUnavailable as error:
                    backoff = min(max(backoff * 2, 0.25), MAX_BACKOFF)
                    event(
                        log,
                        logging.WARNING,
                        "operation.store_unavailable",
                        f"queue worker backs off {backoff:.2f}s: {error}",
                        error=str(error),
                    )
                    record = None
                else:
                    backoff = 0.0
                if record is not None:
                    self._idlers.pop(index, None)  # busy: wakes go to idle workers
                    retry_after = await self._execute(record)
                    if retry_after:
                        await self._idle(asyncio.Event(), retry_after)  # a pause, not a wait
                    continue
            finally:
                self._held -= 1
            await self._idle(asyncio.Event() if backoff else signal, backoff or IDLE_POLL)

    async def _execute(self, record: OperationRecord) -> float:
        """Run a claimed job to its end; the seconds to wait before claiming again, if any."""
        self._metrics.operations_started.inc()
        if record.attempts > 1:
            self._metrics.operations_retries.inc()
        self._metrics.operations_queue_wait.observe(
            max((record.start_time or self._clock()) - record.create_time, 0.0)
        )
        submitter = propagate.extract(dict(record.trace_context))
        link = trace.get_current_span(submitter).get_span_context()
        with _tracer.start_as_current_span(
            "codebeaker.operation.run",
            context=submitter,
            kind=SpanKind.CONSUMER,
            links=[Link(link)] if link.is_valid else [],
            attributes={"codebeaker.operation": record.name, "codebeaker.attempt": record.attempts},
        ):
            _log_state(
                record, "operation.started", f"{record.name} started (attempt {record.attempts})"
            )
            run = asyncio.create_task(self._runner.run(record))
            self._running[record.id] = run
            try:
                return await self._supervise(record, run)
            finally:
                self._running.pop(record.id, None)
                self._handing_back.discard(record.id)
                self.wake()  # a slot is free again

    async def _supervise(
        self, record: OperationRecord, run: asyncio.Task[RunOutcome | HandBack]
    ) -> float:
        cancelled = False
        while not run.done():
            await asyncio.wait({run}, timeout=self.settings.renew_every)
            if run.done():
                break
            try:
                renewed = await self._store.renew(record.id, self.worker_id, self.settings.lease)
            except StoreUnavailable:
                continue  # keep running; the lease may still be ours when the store is back
            if renewed is None:
                run.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await run
                _log_state(
                    record, "operation.lease_lost", f"{record.name}: lease lost, run stopped"
                )
                return 0.0
            if renewed.cancel_requested and not cancelled:
                cancelled = True
                run.cancel()
        if record.id in self._handing_back or (run.cancelled() and not cancelled):
            await self._release(record, "the server is stopping")
            return 0.0
        if cancelled or run.cancelled():
            await self._finish(
                record,
                RunOutcome(
                    OperationState.CANCELLED,
                    error=cancelled_status("the operation was cancelled while it ran"),
                ),
            )
            return 0.0
        outcome = run.result()
        if isinstance(outcome, HandBack):
            await self._release(record, outcome.reason)
            return outcome.retry_after
        await self._finish(record, outcome)
        return 0.0

    async def _release(self, record: OperationRecord, reason: str) -> None:
        left: OperationState | None = None
        with contextlib.suppress(StoreUnavailable):  # its lease runs out: claimed again then
            left = await self._store.release(record.id, self.worker_id)
        if left is OperationState.CANCELLED:  # a cancel came while it ran: it ends here
            self._metrics.operations_finished.labels(left.value).inc()
            _log_state(record, "operation.cancelled", f"{record.name} cancelled", state=left.value)
            return
        self._metrics.operations_handed_back.inc()
        _log_state(
            record, "operation.handed_back", f"{record.name} handed back: {reason}", reason=reason
        )

    async def _finish(self, record: OperationRecord, outcome: RunOutcome) -> None:
        for delay in (0.0, 0.5, 1.0, 2.0, 4.0):
            await asyncio.sleep(delay)  # a pause between tries while the store is away
            try:
                finished = await self._store.finish(
                    record.id,
                    self.worker_id,
                    outcome.state,
                    result=outcome.result,
                    error=outcome.error,
                )
                break
            except StoreUnavailable:
                continue
        else:
            finished = False
        if not finished:
            _log_state(
                record, "operation.lease_lost", f"{record.name}: lease lost before it finished"
            )
            return
        self._metrics.operations_finished.labels(outcome.state.value).inc()
        name = f"operation.{outcome.state.value.lower()}"
        _log_state(
            record, name, f"{record.name} {outcome.state.value.lower()}", state=outcome.state.value
        )


def _log_state(record: OperationRecord, name: str, message: str, **fields: object) -> None:
    event(
        log,
        logging.INFO,
        name,
        message,
        operation=record.name,
        tenant=record.tenant,
        request_id=record.request_id,
        attempt=record.attempts,
        **fields,
    )
