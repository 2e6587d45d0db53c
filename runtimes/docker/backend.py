"""DockerBackend: hosts are hardened containers, one per execution, removed after.

A launch creates the container (`container.container_config`: DESIGN.md's
sandbox rules), attaches to it and starts it; cb-supervisor then waits on the
attached stdin. Removal (kill, drain, remove) runs in the background, and
keeps reading the attach stream meanwhile: the engine cannot kill a container
whose output nobody reads. Containers carry our owner label, so `prepare`
and `close` sweep whatever an instance of ours left behind. Readiness is per
language (its image, its OCI runtime), so one missing image takes only its
language out of service.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.docker.cgroup import memory_cgroup
from codebeaker.runtimes.docker.container import container_config
from codebeaker.runtimes.docker.engine import AttachStream, Engine
from codebeaker.runtimes.docker.host import READ_SIZE, DockerHost
from codebeaker.runtimes.docker.labels import (
    OWNER_LABEL,
    PACKAGES_LABEL,
    SESSION_LABEL,
    VERSION_LABEL,
    image_for,
    packages_from_label,
)
from codebeaker.runtimes.docker.settings import DockerSettings
from codebeaker.runtimes.errors import CodeBeakerError
from codebeaker.runtimes.model import Limits
from codebeaker.runtimes.telemetry import annotate, phase

log = logging.getLogger(__name__)
POOLED = "pooled"  # execution label of a container launched before its program is known
REUSABLE = "host"  # execution label of a host that serves one run after another


class DockerBackend:
    def __init__(self, catalog: Catalog, settings: DockerSettings) -> None:
        self._catalog = catalog
        self._settings = settings
        self._engine = Engine(settings.address(), settings.api_threads)
        self._teardowns: set[asyncio.Task[None]] = set()

    @property
    def cpu_quota(self) -> float:
        return self._settings.cpus

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def settings(self) -> DockerSettings:
        return self._settings

    @property
    def owner_label(self) -> str:
        return f"{OWNER_LABEL}={self._settings.instance}"

    def memory_resizable(self, language: str) -> bool:
        return self._settings.resizable(language)

    async def prepare(self) -> None:
        await self._remove_owned("leftover")

    async def _remove_owned(self, kind: str) -> None:
        """Remove our one-shot sandboxes and hosts; sessions' containers outlive a
        server (the session registry decides about those)."""
        found = await self._engine.containers(self.owner_label)
        owned = [item.id for item in found if SESSION_LABEL not in item.labels]
        if owned:
            log.info("removing %d %s sandbox containers", len(owned), kind)
        await asyncio.gather(*(self._engine.remove(cid) for cid in owned))

    async def readiness(self) -> Mapping[str, str | None]:
        specs = self._catalog.runtimes()
        try:
            await self._engine.ping()
            registered = await self._engine.oci_runtimes()
        except Exception as error:  # health reports any failure as a reason
            return {spec.key: str(error) for spec in specs}
        reasons = await asyncio.gather(*(self._unready(spec, registered) for spec in specs))
        return {spec.key: reason for spec, reason in zip(specs, reasons, strict=True)}

    async def _unready(self, spec: LanguageSpec, registered: set[str]) -> str | None:
        runtime = self._settings.runtime_for(spec.id)
        if runtime not in registered:
            return f"OCI runtime {runtime} is not registered with the engine"
        try:
            await self._engine.image_labels(self._image(spec))
        except Exception as error:  # a missing image, or the engine gone meanwhile
            return str(error)
        return None

    async def versions(self) -> Mapping[str, str]:
        found: dict[str, str] = {}
        for spec in self._catalog.runtimes():
            with contextlib.suppress(Exception):
                labels = await self._engine.image_labels(self._image(spec))
                found[spec.key] = labels.get(VERSION_LABEL, "")
        return found

    async def packages(self) -> Mapping[str, Mapping[str, str]]:
        found: dict[str, Mapping[str, str]] = {}
        for spec in self._catalog.runtimes():
            with contextlib.suppress(Exception):
                labels = await self._engine.image_labels(self._image(spec))
                found[spec.key] = packages_from_label(labels.get(PACKAGES_LABEL, ""))
        return found

    def _image(self, spec: LanguageSpec) -> str:
        return image_for(spec, self._settings.images)

    async def launch(
        self, spec: LanguageSpec, limits: Limits, execution_id: str, *, reusable: bool = False
    ) -> DockerHost:
        annotate(runtime=self._settings.runtime_for(spec.id))
        label = execution_id or (REUSABLE if reusable else POOLED)
        config = container_config(spec, limits, self._settings, label, reusable=reusable)
        container_id = await self.created(config)
        attach: AttachStream | None = None
        try:
            attach = await self._engine.attach(container_id)
            await self._engine.start(container_id)
        except BaseException:
            self._schedule_teardown(container_id, attach)
            raise
        memory = None
        if reusable:  # its cgroup serves each run in turn: the server resets its peak
            with contextlib.suppress(CodeBeakerError):
                memory = memory_cgroup((await self._engine.state(container_id)).pid)
        return DockerHost(container_id, attach, self._engine, memory)

    async def created(self, config: dict[str, object]) -> str:
        """Create a container; a caller that gives up meanwhile (a cancelled call)
        must not leave it behind: the engine finishes creating it regardless."""
        creating = asyncio.ensure_future(self._engine.create(config))
        try:
            return await asyncio.shield(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(self._remove_if_created)
            raise

    def _remove_if_created(self, creating: asyncio.Future[str]) -> None:
        if not creating.cancelled() and creating.exception() is None:
            self._schedule_teardown(creating.result(), None)

    def discard(self, host: DockerHost) -> None:
        self._schedule_teardown(host.container_id, host.attach)

    async def close(self) -> None:
        while self._teardowns:
            await asyncio.gather(*list(self._teardowns), return_exceptions=True)
        try:
            await self._remove_owned("remaining")
        except CodeBeakerError as error:
            log.warning("could not sweep sandbox containers at shutdown: %s", error)
        finally:
            self._engine.close()

    def _schedule_teardown(self, container_id: str, attach: AttachStream | None) -> None:
        task = asyncio.get_running_loop().create_task(self._teardown(container_id, attach))
        self._teardowns.add(task)
        task.add_done_callback(self._teardowns.discard)

    async def _teardown(self, container_id: str, attach: AttachStream | None) -> None:
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
