"""Running jobs through admission and the sandbox, buffered or streamed.

The servicer calls these two entry points; they know nothing of protobuf.
`events` passes the sandbox's events through while holding an admission slot;
`collect` gathers them into capped buffers per stage (compile, run, each test
case) for the unary Execute. Every
execution, however it ends, is reported once (log line, metrics, span).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import (
    COMPILE_STAGE,
    Event,
    Finished,
    Job,
    Outcome,
    Output,
    Stage,
    Stream,
)
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.runtimes.telemetry import durations
from codebeaker.server.admission import Admission
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
    ) -> None:
        self._sandbox = sandbox
        self._admission = admission
        self._report = report

    async def events(self, job: Job) -> AsyncGenerator[Event, None]:
        """The sandbox's events under an admission slot; reported once, however it ends."""
        log.debug("execution %s: language=%s", job.execution_id, job.language.id)
        outcome: Outcome | None = None
        error: BaseException | None = None
        started = time.perf_counter()
        with durations() as phases:
            try:
                async with (
                    self._admission.slot(),
                    contextlib.aclosing(self._sandbox.execute(job)) as events,
                ):
                    async for event in events:
                        if isinstance(event, Finished):
                            outcome = event.outcome
                        yield event
            except BaseException as caught:
                error = caught
                raise
            finally:
                # After the verdict, the consumer closing us (GeneratorExit) is the normal end.
                self._report(
                    ExecutionRecord(
                        job,
                        time.perf_counter() - started,
                        dict(phases),
                        outcome,
                        error if outcome is None else None,
                    )
                )

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


def _output_cap(job: Job, stage: Stage) -> int:
    limits = job.compile_limits if stage == COMPILE_STAGE else None
    return (limits or job.limits).max_output_bytes
