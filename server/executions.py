"""Running jobs through admission and the sandbox, buffered or streamed.

The servicer calls these two entry points; they know nothing of protobuf.
`events` passes the sandbox's events through while holding an admission slot;
`collect` gathers them into capped buffers for the unary Execute.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import Event, Finished, Job, Outcome, Output, Stream
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.server.admission import Admission

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Collected:
    outcome: Outcome
    stdout: bytes
    stderr: bytes


class Executions:
    def __init__(self, sandbox: Sandbox, admission: Admission) -> None:
        self._sandbox = sandbox
        self._admission = admission

    async def events(self, job: Job) -> AsyncGenerator[Event, None]:
        async with self._admission.slot():
            log.info(
                "execution %s started: language=%s request_id=%s",
                job.execution_id,
                job.language.id,
                job.request_id,
            )
            async with contextlib.aclosing(self._sandbox.execute(job)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        _log_outcome(job, event.outcome)
                    yield event

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


def _log_outcome(job: Job, outcome: Outcome) -> None:
    log.info(
        "execution %s finished: language=%s verdict=%s exit_code=%d wall=%.3fs cpu=%.3fs",
        job.execution_id,
        job.language.id,
        outcome.verdict.value,
        outcome.exit_code,
        outcome.wall_time,
        outcome.cpu_time,
    )
