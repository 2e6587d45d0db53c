"""SupervisedSandbox: the Sandbox over any backend whose hosts run cb-supervisor.

Each job gets a fresh host, used once and discarded: taken from its
language's warm pool when the job fits the pool's limits, otherwise launched
for it. The request (files, stages, every stage's stdin) is written to the
host, the supervisor conversation turns its frames into events, and the host
is discarded (removed off the request path) however the job ended, even when
the caller goes away mid-run. Only then does the pool launch a replacement,
so launches never compete with a running program for the CPU.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace
from typing import Generic

from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from codebeaker.runtimes.backend import Backend, H
from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.layout import program_env
from codebeaker.runtimes.model import Event, Finished, Job, Limits
from codebeaker.runtimes.pool import PoolSettings, PoolStats, WarmPool
from codebeaker.runtimes.supervisor.conversation import converse
from codebeaker.runtimes.supervisor.protocol import encode_request, plan_stages
from codebeaker.runtimes.telemetry import (
    background_phase,
    finished_attributes,
    job_attributes,
    limit_attributes,
    phase,
)

log = logging.getLogger(__name__)
# Extra time past a stage's wall limit before the server's own clock ends it.
WALL_GRACE = 1.0
# How long close() lets executions cancelled at shutdown close their iterators.
CLOSE_WAIT = 5.0


@dataclass(frozen=True)
class Launched(Generic[H]):
    """A started host and its launch phase (which the request that uses it links to)."""

    host: H
    origin: SpanContext = INVALID_SPAN_CONTEXT

    def is_alive(self) -> bool:
        return self.host.is_alive()


def host_limits(job: Job) -> Limits:
    """The limits a host starts with: the run's, or, for a compile with a
    memory limit of its own, that one (changed to the run's after the compile)."""
    if job.compile_limits is None or job.compile_limits.memory_bytes == job.limits.memory_bytes:
        return job.limits
    return replace(job.limits, memory_bytes=job.compile_limits.memory_bytes)


def _fixed_at_start(limits: Limits) -> tuple[int, int]:
    """The limits fixed when a host is launched (the rest travel with the request)."""
    return limits.memory_bytes, limits.max_processes


class SupervisedSandbox(Generic[H]):
    def __init__(
        self,
        catalog: Catalog,
        backend: Backend[H],
        pools: PoolSettings,
        pool_limits: Limits,
        wall_grace: float = WALL_GRACE,
    ) -> None:
        self._catalog = catalog
        self._backend = backend
        self._pool_limits = pool_limits
        self._wall_grace = wall_grace
        self.pools = {
            spec.id: WarmPool(
                spec.id,
                launch=functools.partial(self._launch, spec, pool_limits, ""),
                discard=self._discard,
                is_alive=Launched.is_alive,
                size=pools.size,
                parallel=pools.parallel,
            )
            for spec in catalog.specs()
            if pools.pooled(spec.id)
        }
        self._running = 0
        self._quiet = asyncio.Event()  # set while no execution is running
        self._quiet.set()

    def memory_resizable(self, language: str) -> bool:
        return self._backend.memory_resizable(language)

    async def prepare(self) -> None:
        await self._backend.prepare()
        for pool in self.pools.values():
            pool.start()

    async def readiness(self) -> Mapping[str, str | None]:
        return await self._backend.readiness()

    def pool_stats(self) -> Mapping[str, PoolStats]:
        return {language: pool.stats() for language, pool in self.pools.items()}

    async def versions(self) -> Mapping[str, str]:
        return await self._backend.versions()

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        # Executions cancelled at shutdown close their iterators soon after;
        # give them a moment before the backend sweeps whatever is left.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._quiet.wait()
        await self._backend.close()

    async def execute(self, job: Job) -> AsyncGenerator[Event, None]:
        self._running += 1
        self._quiet.clear()
        try:
            async for event in self._execute(job):
                yield event
        finally:
            self._running -= 1
            if not self._running:
                self._quiet.set()

    async def _execute(self, job: Job) -> AsyncGenerator[Event, None]:
        launched = await self._acquire(job)
        host = launched.host
        try:
            plans = plan_stages(job, program_env(job.language, job.env))
            request, after_pause = encode_request(job.files, plans, self._backend.cpu_quota)
            # Buffered whole: the transport sends it as the supervisor reads,
            # which it does stage by stage (each test case's stdin as it runs).
            with phase("deliver", **job_attributes(job), request_bytes=len(request)):
                host.write(request)
            conversation = converse(host, job, plans, after_pause, self._wall_grace)
            async with contextlib.aclosing(conversation) as events:
                with phase(
                    "run", **job_attributes(job), **limit_attributes(job.limits), stages=len(plans)
                ) as run:
                    async for event in events:
                        if isinstance(event, Finished):
                            run.set(**finished_attributes(event))
                            break
                        yield event
                    else:
                        raise SandboxFailure("the sandbox ended without a result")
                with phase("collect", **job_attributes(job)):
                    yield event
        finally:
            self._discard(launched)
            # Only now: a launch running beside the program would slow it down.
            if pool := self.pools.get(job.language.id):
                pool.refill()

    async def _acquire(self, job: Job) -> Launched[H]:
        pool = self.pools.get(job.language.id)
        limits = host_limits(job)
        if pool and _fixed_at_start(limits) == _fixed_at_start(self._pool_limits):
            with phase("acquire", **job_attributes(job)) as acquiring:
                launched = await pool.acquire()
                acquiring.link(launched.origin)
                return launched
        return await self._launch(job.language, limits, job.execution_id)

    async def _launch(self, spec: LanguageSpec, limits: Limits, execution_id: str) -> Launched[H]:
        # A pool's launch belongs to no request: its own trace, linked from its user's.
        pooled = not execution_id
        launching = background_phase if pooled else phase
        with launching("launch", language=spec.id, pooled=pooled) as launch:
            host = await self._backend.launch(spec, limits, execution_id)
            return Launched(host, launch.origin)

    def _discard(self, launched: Launched[H]) -> None:
        self._backend.discard(launched.host)
