"""DockerSessions: session sandboxes are long-lived hardened containers.

A session's container is made like a one-shot sandbox (`container.session_config`)
with its agent as PID 1, labelled with our owner and the session's id, and is
never removed by the one-shot backend's sweeps (`DockerBackend` spares it). Its
usage is read from the host's cgroup files (no engine call per sample); pause
and resume are the engine's freezer; `events` follows the engine's event
stream for our containers, and `listing` is what the registry is reconciled
against.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.docker.backend import DockerBackend
from codebeaker.runtimes.docker.cgroup import SandboxCgroups, sandbox_cgroups
from codebeaker.runtimes.docker.container import session_config, session_resources
from codebeaker.runtimes.docker.engine import AttachStream
from codebeaker.runtimes.docker.host import DockerHost
from codebeaker.runtimes.docker.labels import SESSION_LABEL
from codebeaker.runtimes.errors import CodeBeakerError
from codebeaker.runtimes.sessions.backend import (
    SandboxEvent,
    SandboxListing,
    SandboxUsage,
    SessionLimits,
    SessionSandbox,
)
from codebeaker.runtimes.telemetry import annotate


class DockerSessions:
    def __init__(self, backend: DockerBackend) -> None:
        self._backend = backend
        self._engine = backend.engine
        self._settings = backend.settings
        self._cgroups: dict[str, SandboxCgroups | None] = {}

    async def launch_session(
        self, spec: LanguageSpec, limits: SessionLimits, session_id: str
    ) -> SessionSandbox:
        annotate(runtime=self._settings.runtime_for(spec.id))
        config = session_config(spec, limits, self._settings, session_id)
        container_id = await self._backend.created(config)
        attach: AttachStream | None = None
        try:
            attach = await self._engine.attach(container_id)
            await self._engine.start(container_id)
            pid = (await self._engine.state(container_id)).pid
        except BaseException:
            if attach is not None:
                attach.close()
            await self._engine.remove(container_id)
            raise
        self._cgroups[container_id] = sandbox_cgroups(pid)
        return SessionSandbox(
            session_id, container_id, DockerHost(container_id, attach, self._engine)
        )

    async def attach(self, session_id: str, sandbox_id: str) -> SessionSandbox:
        attach = await self._engine.attach(sandbox_id)
        if sandbox_id not in self._cgroups:
            with contextlib.suppress(CodeBeakerError):
                self._cgroups[sandbox_id] = sandbox_cgroups(
                    (await self._engine.state(sandbox_id)).pid
                )
        return SessionSandbox(session_id, sandbox_id, DockerHost(sandbox_id, attach, self._engine))

    async def resize(self, sandbox: SessionSandbox, limits: SessionLimits) -> None:
        runtime = self._settings.runtime
        await self._engine.update(sandbox.sandbox_id, session_resources(runtime, limits))

    def resizable(self, language: str) -> bool:
        return self._settings.resizable(language)

    async def pause(self, sandbox_id: str) -> None:
        await self._engine.pause(sandbox_id)

    async def resume(self, sandbox_id: str) -> None:
        await self._engine.unpause(sandbox_id)

    async def remove(self, sandbox_id: str) -> None:
        self._cgroups.pop(sandbox_id, None)
        await self._engine.remove(sandbox_id)

    def usage(self, sandbox_id: str) -> SandboxUsage:
        cgroups = self._cgroups.get(sandbox_id)
        if cgroups is None:
            return SandboxUsage(None, None, None)
        return cgroups.usage()

    async def listing(self) -> list[SandboxListing]:
        now = time.time()
        found = await self._engine.containers(self._backend.owner_label)
        return [
            SandboxListing(
                sandbox_id=item.id,
                session_id=item.labels.get(SESSION_LABEL, ""),
                running=item.state in ("running", "paused"),
                paused=item.state == "paused",
                age=max(0.0, now - item.created),
            )
            for item in found
        ]

    async def events(self) -> AsyncIterator[SandboxEvent]:
        async for item in self._engine.events(self._backend.owner_label):
            actor = item.get("Actor")
            attributes = actor.get("Attributes", {}) if isinstance(actor, dict) else {}
            sandbox_id = str(actor.get("ID", "")) if isinstance(actor, dict) else ""
            yield SandboxEvent(
                sandbox_id=sandbox_id,
                session_id=str(attributes.get(SESSION_LABEL, "")),
                action=str(item.get("Action", "")),
            )
