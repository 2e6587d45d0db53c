"""DockerSandbox: one fresh hardened container per execution, used once, removed.

A container is launched (created, attached, started: cb-supervisor then waits
on its stdin) ahead of time by the warm pool of its language, or on the
request path when the pool has none ready or the request needs other
container-level limits. The request path sends the program into the waiting
container and relays the supervisor's frames as events until its exit report.
Teardown (kill, drain, remove) always runs, off the request path, even when
the caller goes away mid-run.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, replace

from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.docker.container import container_config, program_env
from codebeaker.runtimes.docker.demux import STDOUT, AttachDemuxer
from codebeaker.runtimes.docker.engine import AttachStream, Engine
from codebeaker.runtimes.docker.pool import PoolStats, WarmPool
from codebeaker.runtimes.docker.settings import OWNER_LABEL, DockerSettings
from codebeaker.runtimes.errors import CodeBeakerError, SandboxFailure
from codebeaker.runtimes.images import VERSION_LABEL
from codebeaker.runtimes.model import Event, Finished, Job, LimitKind, Limits, Outcome
from codebeaker.runtimes.protocol import (
    FrameDecoder,
    FrameType,
    StagePlan,
    encode_request,
    plan_stages,
)
from codebeaker.runtimes.relay import StageTracker
from codebeaker.runtimes.telemetry import (
    background_phase,
    finished_attributes,
    job_attributes,
    limit_attributes,
    phase,
)
from codebeaker.runtimes.verdict import killed_outcome

log = logging.getLogger(__name__)
READ_SIZE = 65536
CLOSE_WAIT = 5.0
OOM_RECORD_POLLS = 10
OOM_RECORD_INTERVAL = 0.05
POOLED = "pooled"  # execution label of a container launched before its program is known


@dataclass(frozen=True)
class Launched:
    """A started container whose supervisor waits for one program."""

    container_id: str
    attach: AttachStream
    origin: SpanContext = INVALID_SPAN_CONTEXT  # its launch phase, linked from its user

    def is_alive(self) -> bool:
        return not self.attach.reader.at_eof()


def _container_limits(limits: Limits) -> tuple[int, int]:
    """The limits fixed when a container is created (the rest travel with the program)."""
    return limits.memory_bytes, limits.max_processes


def _sandbox_limits(job: Job) -> Limits:
    """The limits the sandbox starts with: the run's, or, for a compile with a
    memory limit of its own, that one (changed to the run's after the compile)."""
    if job.compile_limits is None or job.compile_limits.memory_bytes == job.limits.memory_bytes:
        return job.limits
    return replace(job.limits, memory_bytes=job.compile_limits.memory_bytes)


class DockerSandbox:
    def __init__(self, catalog: Catalog, settings: DockerSettings, pool_limits: Limits) -> None:
        self._catalog = catalog
        self._settings = settings
        self._engine = Engine(settings.docker_host, settings.api_threads)
        self._pool_limits = pool_limits
        self.pools = {
            spec.id: WarmPool(
                spec.id,
                launch=functools.partial(self._launch, spec, pool_limits, POOLED),
                discard=self._discard,
                is_alive=Launched.is_alive,
                size=settings.pool_size,
                parallel=settings.pool_parallel,
            )
            for spec in catalog.specs()
            if settings.pooled(spec.id)
        }
        self._teardowns: set[asyncio.Task[None]] = set()
        self._running = 0
        self._quiet = asyncio.Event()  # set while no execution is running
        self._quiet.set()

    @property
    def owner_label(self) -> str:
        return f"{OWNER_LABEL}={self._settings.instance}"

    async def prepare(self) -> None:
        await self._remove_owned("leftover")
        for pool in self.pools.values():
            pool.start()

    async def _remove_owned(self, kind: str) -> None:
        owned = await self._engine.containers_with_label(self.owner_label)
        if owned:
            log.info("removing %d %s sandbox containers", len(owned), kind)
        await asyncio.gather(*(self._engine.remove(cid) for cid in owned))

    async def unready_reason(self) -> str | None:
        try:
            await self._engine.ping()
            for spec in self._catalog.specs():
                await self._engine.image_labels(spec.image)
            missing = self._settings.runtimes() - await self._engine.oci_runtimes()
        except Exception as error:  # health reports any failure as a reason
            return str(error)
        if missing:
            return f"OCI runtime {', '.join(sorted(missing))} is not registered with the engine"
        return None

    def pool_stats(self) -> Mapping[str, PoolStats]:
        return {language: pool.stats() for language, pool in self.pools.items()}

    async def versions(self) -> Mapping[str, str]:
        found: dict[str, str] = {}
        for spec in self._catalog.specs():
            with contextlib.suppress(Exception):
                labels = await self._engine.image_labels(spec.image)
                found[spec.id] = labels.get(VERSION_LABEL, "")
        return found

    async def close(self) -> None:
        await asyncio.gather(*(pool.close() for pool in self.pools.values()))
        # Executions cancelled at shutdown close their iterators soon after;
        # give them a moment, then sweep whatever still carries our label.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_WAIT):
                await self._quiet.wait()
        while self._teardowns:
            await asyncio.gather(*list(self._teardowns), return_exceptions=True)
        try:
            await self._remove_owned("remaining")
        except CodeBeakerError as error:
            log.warning("could not sweep sandbox containers at shutdown: %s", error)
        finally:
            self._engine.close()

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
        try:
            plans = plan_stages(job, program_env(job.language, job.env))
            request, after_pause = encode_request(job.files, plans, self._settings.cpus)
            # Buffered whole: the transport sends it as the supervisor reads,
            # which it does stage by stage (each test case's stdin as it runs).
            with phase("deliver", **job_attributes(job), request_bytes=len(request)):
                launched.attach.writer.write(request)
            relay = self._relay(launched, job, plans, after_pause)
            async with contextlib.aclosing(relay) as events:
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

    async def _acquire(self, job: Job) -> Launched:
        pool = self.pools.get(job.language.id)
        limits = _sandbox_limits(job)
        if pool and _container_limits(limits) == _container_limits(self._pool_limits):
            with phase("acquire", **job_attributes(job)) as acquiring:
                launched = await pool.acquire()
                acquiring.link(launched.origin)
                return launched
        return await self._launch(job.language, limits, job.execution_id)

    async def _launch(self, spec: LanguageSpec, limits: Limits, label: str) -> Launched:
        # A pool's launch belongs to no request: its own trace, linked from its user's.
        pooled = label == POOLED
        runtime = self._settings.runtime_for(spec.id)
        launching = background_phase if pooled else phase
        with launching("launch", language=spec.id, pooled=pooled, runtime=runtime) as launch:
            launched = await self._create_and_start(spec, limits, label)
            return replace(launched, origin=launch.origin)

    async def _create_and_start(self, spec: LanguageSpec, limits: Limits, label: str) -> Launched:
        config = container_config(spec, limits, self._settings, label)
        container_id = await self._engine.create(config)
        attach: AttachStream | None = None
        try:
            attach = await self._engine.attach(container_id)
            await self._engine.start(container_id)
        except BaseException:
            self._schedule_teardown(container_id, attach)
            raise
        return Launched(container_id, attach)

    def _discard(self, launched: Launched) -> None:
        self._schedule_teardown(launched.container_id, launched.attach)

    async def _relay(
        self, launched: Launched, job: Job, plans: tuple[StagePlan, ...], after_pause: bytes
    ) -> AsyncGenerator[Event, None]:
        """Supervisor frames -> events, each stage under the server's own wall clock."""
        attach = launched.attach
        demux = AttachDemuxer()
        frames = FrameDecoder()
        stages = StageTracker(job, plans)
        grace = self._settings.wall_grace
        stage_began = time.monotonic()
        deadline = stage_began + stages.plan.limits.wall_time + grace
        while True:
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    data = await attach.reader.read(READ_SIZE)
            except TimeoutError:
                log.warning("execution %s: supervisor missed the wall limit", job.execution_id)
                elapsed = time.monotonic() - stage_began
                limits = stages.plan.limits
                for event in stages.cut_short(killed_outcome(LimitKind.WALL_TIME, limits, elapsed)):
                    yield event
                return
            if not data:
                elapsed = time.monotonic() - stage_began
                outcome = await self._unreported_end(launched, stages.plan.limits, elapsed)
                for event in stages.cut_short(outcome):
                    yield event
                return
            for stream, piece in demux.feed(data):
                if stream != STDOUT:
                    log.debug("supervisor: %s", piece.decode(errors="replace").rstrip())
                    continue
                for frame in frames.feed(piece):
                    if frame.type is FrameType.FATAL:
                        reason = frame.payload.decode(errors="replace")
                        raise SandboxFailure(f"supervisor refused the program: {reason}")
                    if frame.type in (FrameType.STARTED, FrameType.EXIT):
                        stage_began = time.monotonic()
                        deadline = stage_began + stages.next_wall_time(frame.type) + grace
                    for event in stages.feed(frame):
                        yield event
                    if stages.pause_due:
                        stages.pause_due = False
                        await self._lower_memory(launched, job)
                        attach.writer.write(after_pause)
                    if stages.done:
                        return

    async def _lower_memory(self, launched: Launched, job: Job) -> None:
        """After a compile with its own memory limit: the run's from now on."""
        with phase("resize", **job_attributes(job), memory_bytes=job.limits.memory_bytes):
            await self._engine.set_memory(launched.container_id, job.limits.memory_bytes)

    async def _unreported_end(self, launched: Launched, limits: Limits, elapsed: float) -> Outcome:
        """The sandbox died before its supervisor reported: only an OOM kill of
        the whole sandbox (as gVisor's is, by the host cgroup) explains that."""
        state = await self._engine.wait_exit(launched.container_id, self._settings.wall_grace)
        # The engine may record the OOM kill a moment after the exit itself.
        for _ in range(OOM_RECORD_POLLS):
            if state.oom_killed:
                break
            await asyncio.sleep(OOM_RECORD_INTERVAL)
            state = await self._engine.state(launched.container_id)
        if state.oom_killed:
            return killed_outcome(LimitKind.MEMORY, limits, elapsed)
        raise SandboxFailure(
            f"the sandbox ended without reporting an exit (container exit code {state.exit_code})"
        )

    def _schedule_teardown(self, container_id: str, attach: AttachStream | None) -> None:
        task = asyncio.get_running_loop().create_task(self._teardown(container_id, attach))
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    async def _teardown(self, container_id: str, attach: AttachStream | None) -> None:
        # Keep reading the attach stream while removing: the engine cannot kill
        # a container whose output nobody reads (DESIGN.md, environment facts).
        drain = asyncio.create_task(_drain(attach)) if attach else None
        try:
            with phase("teardown", container=container_id[:12]):
                async with asyncio.timeout(self._settings.teardown_timeout):
                    await self._engine.remove(container_id)
        except Exception:
            log.exception("teardown of sandbox %s failed", container_id[:12])
        finally:
            if drain:
                drain.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await drain
            if attach:
                attach.close()


async def _drain(attach: AttachStream | None) -> None:
    if attach is None:
        return
    with contextlib.suppress(OSError):
        while await attach.reader.read(READ_SIZE):
            pass
