"""Running jobs through admission and the sandbox, buffered or streamed.

The servicer calls these two entry points; they know nothing of protobuf.
`events` passes the sandbox's events through while holding an admission slot;
`collect` gathers them into capped buffers per stage (compile, run, each test
case) for the unary Execute. Every
execution, however it ends, is reported once (log line, metrics, span).

A tenant's execution also holds one of its `max_executions`, taken before the
global admission (a tenant at its quota is refused at once and takes no place
in the queue), and is charged its CPU time when it ends: the compile's and the
run's as the sandbox measured them, or, if it ended without a verdict
(cancelled, failed), the wall time it held its sandbox for, one CPU's worth,
so leaving early is no way around `cpu_seconds_per_hour`.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace

from codebeaker.runtimes.errors import FailedPrecondition, Reason, SandboxFailure
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    Event,
    Finished,
    Job,
    Outcome,
    Output,
    Stage,
    Stream,
    Verdict,
)
from codebeaker.runtimes.packages.cache import PackageCache
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.runtimes.telemetry import durations
from codebeaker.server import caller
from codebeaker.server.admission import Admission
from codebeaker.server.quotas import ExecutionLease, Tenancy
from codebeaker.server.reporting import ExecutionRecord

log = logging.getLogger(__name__)


# All stages' output kept in one Execute response (the message limit is 64 MiB).
RESPONSE_OUTPUT_BUDGET = 48 * 1024 * 1024


@dataclass(frozen=True)
class Collected:
    """A finished execution with each stage's buffered output, (stdout, stderr) by stage."""

    finished: Finished
    outputs: Mapping[Stage, tuple[bytes, bytes]]
    # Streams whose output did not all fit the response budget.
    cut: frozenset[tuple[Stage, Stream]] = frozenset()


class Executions:
    def __init__(
        self,
        sandbox: Sandbox,
        admission: Admission,
        report: Callable[[ExecutionRecord], None],
        tenancy: Tenancy | None = None,
        packages: PackageCache | None = None,
    ) -> None:
        self._sandbox = sandbox
        self._admission = admission
        self._report = report
        self._tenancy = tenancy
        self._packages = packages

    async def events(self, job: Job) -> AsyncGenerator[Event, None]:
        """The sandbox's events under the tenant's and an admission slot; reported once,
        however it ends."""
        log.debug("execution %s: language=%s", job.execution_id, job.language.id)
        tenant = caller.current_tenant()
        caller.note(resource=job.language.id, execution_id=job.execution_id)
        outcome: Outcome | None = None
        error: BaseException | None = None
        started = time.perf_counter()
        lease: ExecutionLease | None = None
        admitted: float | None = None
        with durations() as phases:
            try:
                if tenant is not None and self._tenancy is not None:
                    lease = self._tenancy.admit_execution(tenant)
                async with self._mounted(job) as run, self._admission.slot():
                    admitted = time.perf_counter()
                    async with contextlib.aclosing(self._sandbox.execute(run)) as events:
                        async for event in events:
                            if isinstance(event, Finished):
                                outcome = event.outcome
                                if lease is not None:
                                    lease.charge(cpu_seconds(event))
                            yield event
            except BaseException as caught:
                error = caught
                raise
            finally:
                if lease is not None:
                    if outcome is None and admitted is not None:
                        lease.charge(time.perf_counter() - admitted)
                    lease.release()
                # After the verdict, the consumer closing us (GeneratorExit) is the normal end.
                self._report(
                    ExecutionRecord(
                        job,
                        time.perf_counter() - started,
                        dict(phases),
                        outcome,
                        error if outcome is None else None,
                        tenant.name if tenant is not None else "",
                    )
                )

    @contextlib.asynccontextmanager
    async def _mounted(self, job: Job) -> AsyncIterator[Job]:
        """`job` with its package set installed (or found) and mounted, while it runs."""
        if not job.packages:
            yield job
            return
        if self._packages is None:
            raise FailedPrecondition(
                "this server installs no packages", reason=Reason.PACKAGE_INSTALL_FAILED
            )
        async with self._packages.mounted(job.language, job.packages) as language:
            yield replace(job, language=language)

    async def collect(self, job: Job) -> Collected:
        """Every stage's output, each stream capped, all of it within the response budget."""
        buffers: dict[Stage, dict[Stream, bytearray]] = {}
        budget = RESPONSE_OUTPUT_BUDGET
        cut: set[tuple[Stage, Stream]] = set()
        async with contextlib.aclosing(self.events(job)) as events:
            async for event in events:
                if isinstance(event, Output):
                    cap = _output_cap(job, event.stage)
                    streams = buffers.get(event.stage)
                    if streams is None:
                        streams = {Stream.STDOUT: bytearray(), Stream.STDERR: bytearray()}
                        buffers[event.stage] = streams
                    buffer = streams[event.stream]
                    room = max(cap - len(buffer), 0)
                    kept = event.data[: min(room, budget)]
                    if len(kept) < min(room, len(event.data)):
                        cut.add((event.stage, event.stream))
                    buffer += kept
                    budget -= len(kept)
                elif isinstance(event, Finished):
                    outputs = {
                        stage: (bytes(s[Stream.STDOUT]), bytes(s[Stream.STDERR]))
                        for stage, s in buffers.items()
                    }
                    return Collected(event, outputs, frozenset(cut))
        raise SandboxFailure("the sandbox ended without a result")


def cpu_seconds(finished: Finished) -> float:
    """The CPU time an execution is charged: its outcome's, plus a successful compile's
    (a failed compile is the outcome itself)."""
    seconds = finished.outcome.cpu_time
    if finished.compile is not None and finished.compile.outcome.verdict is Verdict.OK:
        seconds += finished.compile.outcome.cpu_time
    return seconds


def _output_cap(job: Job, stage: Stage) -> int:
    limits = job.compile_limits if stage == COMPILE_STAGE else None
    return (limits or job.limits).max_output_bytes
