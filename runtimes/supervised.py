"""SupervisedSandbox: the Sandbox over any backend whose hosts run cb-supervisor.

Two isolations. `host` (the default): a job runs in a long-lived host of its
language and fixed limits (`runtimes.hosts`), in a fresh nested sandbox the
host's supervisor set up for it; a host whose run ended cleanly says READY
again and serves the next job, any other is retired. `container`: each job
gets a fresh host used once, taken from its language's warm pool when the job
fits the pool's limits, otherwise launched for it, and discarded (removed off
the request path) however the job ended; only then does the pool launch a
replacement, so launches never compete with a running program for the CPU.
Jobs a host cannot serve (a compile with a memory limit of its own, which
needs the host resized mid-request) take the single-use way in either mode.
Either way the request (files, stages, every stage's stdin) is written to the
host and the supervisor conversation turns its frames into events.
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
from codebeaker.runtimes.hosts import Budget, HostPool, HostSettings, Reusable
from codebeaker.runtimes.layout import program_env
from codebeaker.runtimes.model import Event, Finished, Job, Limits
from codebeaker.runtimes.pool import PoolSettings, PoolStats, WarmPool
from codebeaker.runtimes.supervisor.conversation import FrameReader, await_ready, converse
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
# How long a host may take to say READY: after its launch, and after a run.
LAUNCH_READY_TIMEOUT = 60.0
RUN_READY_TIMEOUT = 10.0
HOST = "host"
CONTAINER = "container"
ISOLATIONS = (HOST, CONTAINER)


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


HostKind = tuple[str, int, int, str]  # runtime key, memory bytes, processes, package set


def host_kind(job: Job) -> HostKind | None:
    """Which reusable hosts can serve `job`, or None if only a single-use one can
    (a compile with a memory limit of its own resizes its host mid-request). A
    request's package set is mounted into hosts of its own."""
    if host_limits(job) is not job.limits:
        return None
    return (job.language.key, *_fixed_at_start(job.limits), job.language.package_set)


class SupervisedSandbox(Generic[H]):
    def __init__(
        self,
        catalog: Catalog,
        backend: Backend[H],
        pools: PoolSettings,
        pool_limits: Limits,
        wall_grace: float = WALL_GRACE,
        isolation: str = CONTAINER,
        hosts: HostSettings | None = None,
    ) -> None:
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {', '.join(ISOLATIONS)}")
        self._catalog = catalog
        self._backend = backend
        self._pool_settings = pools
        self._pool_limits = pool_limits
        self._wall_grace = wall_grace
        self.isolation = isolation
        self._host_settings = hosts or HostSettings()
        self._budget = Budget(self._host_settings.budget)
        self.hosts: dict[HostKind, HostPool[H]] = {}
        self.pools: dict[str, WarmPool[Launched[H]]] = {}
        if isolation == CONTAINER:
            self.pools = {
                spec.key: WarmPool(
                    spec.key,
                    launch=functools.partial(self._launch, spec, pool_limits, ""),
                    discard=self._discard,
                    is_alive=Launched.is_alive,
                    size=pools.size,
                    parallel=pools.parallel,
                )
                for spec in catalog.specs()  # the default versions; the others follow demand
                if pools.pooled(spec.key)
            }
        self._recycling: set[asyncio.Task[None]] = set()
        self._started = False
        self._running = 0
        self._quiet = asyncio.Event()  # set while no execution is running
        self._quiet.set()

    def memory_resizable(self, language: str) -> bool:
        return self._backend.memory_resizable(language)

    async def prepare(self) -> None:
        await self._backend.prepare()
        self._started = True
        for pool in self.pools.values():
            pool.start()
        if self.isolation == HOST:
            for spec in self._catalog.specs():
                if self._pool_settings.pooled(spec.key):
                    self._host_pool((spec.key, *_fixed_at_start(self._pool_limits), ""), spec)

    async def readiness(self) -> Mapping[str, str | None]:
        return await self._backend.readiness()

    def pool_stats(self) -> Mapping[str, PoolStats]:
        stats = {language: pool.stats() for language, pool in self.pools.items()}
        stats.update({pool.name: pool.stats() for pool in self.hosts.values()})
        return stats

    async def versions(self) -> Mapping[str, str]:
        return await self._backend.versions()

    async def packages(self) -> Mapping[str, Mapping[str, str]]:
        return await self._backend.packages()

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        await asyncio.gather(*(pool.close() for pool in self.hosts.values()))
        await asyncio.gather(*self._recycling, return_exceptions=True)
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
        kind = host_kind(job) if self.isolation == HOST else None
        if kind is None:
            async for event in self._execute_once(job):
                yield event
            return
        pool = self._host_pool(kind, job.language)
        with phase("acquire", **job_attributes(job)) as acquiring:
            reusable = await pool.acquire()
            acquiring.link(reusable.origin)
        clean = False
        reusable.host.reset_peak_memory()
        try:
            async for event in self._run(job, reusable.frames):
                if isinstance(event, Finished):
                    clean = reusable.frames.request_done
                yield event
        finally:
            if clean:  # off the request's path: its READY comes after the result
                task = asyncio.get_running_loop().create_task(self._recycle(pool, reusable))
                self._recycling.add(task)
                task.add_done_callback(self._recycling.discard)
            else:
                pool.release(reusable, clean=False)

    async def _execute_once(self, job: Job) -> AsyncGenerator[Event, None]:
        launched = await self._acquire(job)
        try:
            async for event in self._run(job, FrameReader(launched.host)):
                yield event
        finally:
            self._discard(launched)
            # Only now: a launch running beside the program would slow it down.
            if pool := self.pools.get(job.language.key):
                pool.refill()

    async def _run(self, job: Job, frames: FrameReader) -> AsyncGenerator[Event, None]:
        """Deliver `job` to the host `frames` reads from, and relay its events."""
        plans = plan_stages(job, program_env(job.language, job.env))
        request, after_pause = encode_request(job.files, plans, self._backend.cpu_quota)
        # Buffered whole: the transport sends it as the supervisor reads,
        # which it does stage by stage (each test case's stdin as it runs).
        with phase("deliver", **job_attributes(job), request_bytes=len(request)):
            frames.host.write(request)
        conversation = converse(frames, job, plans, after_pause, self._wall_grace)
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

    async def _recycle(self, pool: HostPool[H], reusable: Reusable[H]) -> None:
        try:
            await await_ready(reusable.frames, RUN_READY_TIMEOUT)
        except SandboxFailure as failure:
            log.warning("retiring a %s host: %s", pool.name, failure)
            pool.release(reusable, clean=False)
        else:
            pool.release(reusable, clean=True)

    def _host_pool(self, kind: HostKind, spec: LanguageSpec) -> HostPool[H]:
        """The hosts of `kind`, made on first use; `spec` is the job's (with its
        package set mounted, if it has one)."""
        pool = self.hosts.get(kind)
        if pool is None:
            runtime, memory, processes, package_set = kind
            if package_set:
                self._forget_unused_package_pools()
            limits = replace(self._pool_limits, memory_bytes=memory, max_processes=processes)
            default = _fixed_at_start(self._pool_limits) == (memory, processes)
            pooled = (
                default
                and not package_set
                and spec.is_default
                and self._pool_settings.pooled(runtime)
            )
            name = runtime if default else f"{runtime}/{memory >> 20}MiB/{processes}p"
            name += f"+packages:{package_set[:12]}" if package_set else ""
            pool = HostPool(
                name,
                launch=functools.partial(self._launch_reusable, spec, limits),
                discard=self._backend.discard,
                settings=self._host_settings,
                budget=self._budget,
                minimum=self._host_settings.minimum if pooled else 0,
                # One set's hosts serve its callers only: kept while used, no spare.
                spare=not package_set,
            )
            self.hosts[kind] = pool
            if self._started:
                pool.start()
        return pool

    def _forget_unused_package_pools(self) -> None:
        """Close the pools of package sets with no host and no recent demand (one
        per set ever asked for would otherwise pile up)."""
        for kind, pool in list(self.hosts.items()):
            if kind[3] and pool.unused:
                del self.hosts[kind]
                task = asyncio.get_running_loop().create_task(pool.close())
                self._recycling.add(task)
                task.add_done_callback(self._recycling.discard)

    async def _launch_reusable(self, spec: LanguageSpec, limits: Limits) -> Reusable[H]:
        with background_phase("launch", language=spec.id, pooled=True, reusable=True) as launch:
            host = await self._backend.launch(spec, limits, "", reusable=True)
            frames = FrameReader(host)
            try:
                await await_ready(frames, LAUNCH_READY_TIMEOUT)
            except BaseException:
                self._backend.discard(host)
                raise
            return Reusable(host, frames, launch.origin)

    async def _acquire(self, job: Job) -> Launched[H]:
        pool = None if job.language.package_dir else self.pools.get(job.language.key)
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
