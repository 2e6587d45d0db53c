"""Running jobs through admission and the sandbox, buffered or streamed.

The servicer calls these two entry points; they know nothing of protobuf.
`events` passes the sandbox's events through while holding an admission slot;
`collect` gathers them into capped buffers for the unary Execute. Every
execution, however it ends, is reported once (log line, metrics, span).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import Event, Finished, Job, Outcome, Output, Stream
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.runtimes.telemetry import durations
from codebeaker.server.admission import Admission
from codebeaker.server.reporting import ExecutionRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    outcome: Outcome
    stdout: bytes
    stderr: bytes


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
        cap = job.limits.max_output_bytes
        buffers = {Stream.STDOUT: bytearray(), Stream.STDERR: bytearray()}
        async with contextlib.aclosing(self.events(job)) as events:
            async for event in events:
                if isinstance(event, Output):
                    buffer = buffers[event.stream]
                    buffer += event.data[: max(cap - len(buffer), 0)]
                elif isinstance(event, Finished):
                    return Collected(
                        event.outcome, bytes(buffers[Stream.STDOUT]), bytes(buffers[Stream.STDERR])
                    )
        raise SandboxFailure("the sandbox ended without a result")
