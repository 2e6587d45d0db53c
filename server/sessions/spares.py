"""Started session sandboxes kept ready, so CreateSession returns in milliseconds.

A spare is a session sandbox with the default limits whose agent has already
answered our hello; it carries a session id of its own (labels cannot change
after create), which the session made from it takes. Spares are kept for the
languages sessions were created for; one taken is replaced in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.errors import CodeBeakerError
from codebeaker.runtimes.sessions.agent import AgentLink
from codebeaker.runtimes.sessions.backend import SessionBackend, SessionLimits, SessionSandbox

log = logging.getLogger(__name__)
RETRY_DELAY = 5.0


def new_session_id() -> str:
    return "s" + secrets.token_hex(8)


@dataclass
class Spare:
    sandbox: SessionSandbox
    link: AgentLink


class Spares:
    def __init__(self, backend: SessionBackend, limits: SessionLimits, per_language: int) -> None:
        self._backend = backend
        self.limits = limits
        self._per_language = per_language
        self._ready: dict[str, list[Spare]] = {}
        self._wanted: dict[str, LanguageSpec] = {}
        self._filling: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.launching: set[str] = set()  # session ids of spares being started
        self._closed = False

    def sandbox_ids(self) -> set[str]:
        return {s.sandbox.sandbox_id for spares in self._ready.values() for s in spares}

    def session_ids(self) -> set[str]:
        ready = {s.sandbox.session_id for spares in self._ready.values() for s in spares}
        return ready | self.launching

    def drop_lost(self) -> None:
        """Forget spares whose agent went away (their container died: an engine
        restart), remove them, and start replacements."""
        for runtime, ready in self._ready.items():
            lost = [s for s in ready if s.link.lost]
            for spare in lost:
                ready.remove(spare)
                self._spawn(self._discard(spare))
            if lost:
                self._fill(runtime)

    def take(self, spec: LanguageSpec) -> Spare | None:
        """A ready spare of `spec`'s version of its language (and a replacement
        started), or None."""
        if self._per_language == 0 or self._closed:
            return None
        self._wanted[spec.key] = spec
        ready = self._ready.get(spec.key, [])
        spare = None
        while ready and spare is None:
            candidate = ready.pop(0)
            if candidate.link.lost:
                self._spawn(self._backend.remove(candidate.sandbox.sandbox_id))
            else:
                spare = candidate
        self._fill(spec.key)
        return spare

    def _fill(self, runtime: str) -> None:
        if runtime not in self._filling and not self._closed:
            self._filling.add(runtime)
            self._spawn(self._fill_runtime(runtime))

    async def _fill_runtime(self, runtime: str) -> None:
        try:
            while not self._closed and len(self._ready.get(runtime, [])) < self._per_language:
                try:
                    spare = await self._launch(self._wanted[runtime])
                except CodeBeakerError as error:
                    log.warning("could not start a spare %s session sandbox: %s", runtime, error)
                    await asyncio.sleep(RETRY_DELAY)
                    continue
                if self._closed:
                    await self._discard(spare)
                    return
                self._ready.setdefault(runtime, []).append(spare)
        finally:
            self._filling.discard(runtime)

    async def _launch(self, spec: LanguageSpec) -> Spare:
        session_id = new_session_id()
        self.launching.add(session_id)
        try:
            sandbox = await self._backend.launch_session(spec, self.limits, session_id)
            link = AgentLink(sandbox.channel)
            try:
                await link.open()
            except BaseException:
                await link.close()
                await self._backend.remove(sandbox.sandbox_id)
                raise
            return Spare(sandbox, link)
        finally:
            self.launching.discard(session_id)

    async def _discard(self, spare: Spare) -> None:
        await spare.link.close()
        with contextlib.suppress(CodeBeakerError):
            await self._backend.remove(spare.sandbox.sandbox_id)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        spares = [s for ready in self._ready.values() for s in ready]
        self._ready.clear()
        await asyncio.gather(*(self._discard(s) for s in spares), return_exceptions=True)
