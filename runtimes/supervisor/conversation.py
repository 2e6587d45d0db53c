"""The conversation with a host's supervisor, the same over every backend.

A backend hands over a started `Host`: bytes in, bytes out, and two controls.
This loop is everything else: the supervisor's frames become events stage by
stage (`StageTracker`); each stage runs under the server's own wall clock (the
stage's limit plus a grace, restarted as each stage starts or ends), which cuts
the stage short as TIME_LIMIT_EXCEEDED when the supervisor misses it; after a
compile with a memory limit of its own the host gets the run's limit and the
supervisor its go-on; a FATAL frame is a SandboxFailure. A host that ends
without reporting is explained only by its backend's record of an OOM kill of
the whole host (as gVisor's is, by the host's cgroup); anything else is ours.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator

from codebeaker.runtimes.backend import Host
from codebeaker.runtimes.errors import HostLost, SandboxFailure
from codebeaker.runtimes.model import Event, Job, LimitKind, Limits, Outcome
from codebeaker.runtimes.supervisor.protocol import Frame, FrameDecoder, FrameType, StagePlan
from codebeaker.runtimes.supervisor.relay import StageTracker
from codebeaker.runtimes.telemetry import job_attributes, phase
from codebeaker.runtimes.verdict import killed_outcome

log = logging.getLogger(__name__)


class FrameReader:
    """A host's frames one at a time, across every request a reused host serves
    (frames that arrive together with a request's last one wait for the next read)."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self._decoder = FrameDecoder()
        self._pending: deque[Frame] = deque()
        self.last: FrameType | None = None  # the type of the last frame handed out

    async def next(self) -> Frame | None:
        """The next frame, or None once the host's stream has ended."""
        while not self._pending:
            data = await self.host.read()
            if not data:
                self.last = None
                return None
            self._pending.extend(self._decoder.feed(data))
        frame = self._pending.popleft()
        self.last = frame.type
        return frame

    @property
    def request_done(self) -> bool:
        """Whether the last request ended as the protocol says (its END frame came)."""
        return self.last is FrameType.END


async def await_ready(frames: FrameReader, within: float) -> None:
    """Wait for a host-mode supervisor's READY frame (its next sandbox is set up);
    anything else is a SandboxFailure saying what came instead."""
    try:
        async with asyncio.timeout(within):
            frame = await frames.next()
    except TimeoutError:
        raise SandboxFailure(f"the host did not get ready within {within:.0f}s") from None
    if frame is None:
        raise SandboxFailure("the host ended before it was ready")
    if frame.type is FrameType.FATAL:
        reason = frame.payload.decode(errors="replace")
        raise SandboxFailure(f"the host could not set up a sandbox: {reason}")
    if frame.type is not FrameType.READY:
        raise SandboxFailure(f"the host sent {frame.type.name} where READY was due")


async def converse(
    frames: FrameReader,
    job: Job,
    plans: tuple[StagePlan, ...],
    after_pause: bytes,
    wall_grace: float,
) -> AsyncGenerator[Event, None]:
    """The events of `job`, whose request was written to the host, until Finished.

    `after_pause` is what to send once a PAUSE stage (a compile with a memory
    limit of its own) has succeeded and the host has the run's memory limit.
    """
    host = frames.host
    stages = StageTracker(job, plans)
    stage_began = time.monotonic()
    deadline = stage_began + stages.plan.limits.wall_time + wall_grace
    while True:
        try:
            async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                frame = await frames.next()
        except TimeoutError:
            log.warning("execution %s: supervisor missed the wall limit", job.execution_id)
            elapsed = time.monotonic() - stage_began
            limits = stages.plan.limits
            for event in stages.cut_short(killed_outcome(LimitKind.WALL_TIME, limits, elapsed)):
                yield event
            return
        if frame is None:
            elapsed = time.monotonic() - stage_began
            outcome = await _unreported_end(host, stages.plan.limits, elapsed, wall_grace)
            for event in stages.cut_short(outcome):
                yield event
            return
        if frame.type is FrameType.FATAL:
            reason = frame.payload.decode(errors="replace")
            raise SandboxFailure(f"supervisor refused the program: {reason}")
        if frame.type in (FrameType.STARTED, FrameType.EXIT):
            stage_began = time.monotonic()
            deadline = stage_began + stages.next_wall_time(frame.type) + wall_grace
        for event in stages.feed(frame):
            yield event
        if stages.pause_due:
            stages.pause_due = False
            with phase("resize", **job_attributes(job), memory_bytes=job.limits.memory_bytes):
                await host.set_memory(job.limits.memory_bytes)
            host.write(after_pause)
        if stages.done:
            return


async def _unreported_end(host: Host, limits: Limits, elapsed: float, within: float) -> Outcome:
    ended = await host.ended(within)
    if ended.oom_killed:
        return killed_outcome(LimitKind.MEMORY, limits, elapsed)
    raise HostLost(
        f"the sandbox ended without reporting an exit (host exit code {ended.exit_code})"
    )
