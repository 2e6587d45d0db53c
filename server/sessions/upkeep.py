"""Keeping sessions and the engine in agreement, and sessions within their time.

Four loops: expiry (every second: a session past its lifetime, or idle past
its timeout, is TERMINATED; ended records past the retention are dropped),
usage sampling (every --session-usage-interval: cgroup counters and disk, into
metrics and USAGE events), the engine's events (a session's container that
died or was removed is LOST within a moment), and reconcile (at start-up,
every --session-reconcile-interval and whenever the engine comes back): the
registry against the engine's list of our containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine

from codebeaker.runtimes.errors import CodeBeakerError
from codebeaker.runtimes.sessions.backend import SandboxListing
from codebeaker.runtimes.telemetry import background_phase, phase
from codebeaker.server.logs import event
from codebeaker.server.sessions.manager import Sessions, Usage
from codebeaker.server.sessions.record import LIVE_STATES, SessionRecord, State

log = logging.getLogger(__name__)
EXPIRY_PERIOD = 1.0
LEFTOVER_AGE = 60.0  # an exited one-shot container older than this is nobody's any more
SAMPLE_CONCURRENCY = 16
DEATHS = ("die", "destroy")

UsageObserver = Callable[[SessionRecord, Usage], None]


class Upkeep:
    def __init__(
        self,
        sessions: Sessions,
        *,
        usage_interval: float,
        reconcile_interval: float,
        retention: float,
        on_usage: UsageObserver | None = None,
    ) -> None:
        self._sessions = sessions
        self._usage_interval = usage_interval
        self._reconcile_interval = reconcile_interval
        self._retention = retention
        self._on_usage = on_usage
        self._tasks: list[asyncio.Task[None]] = []
        self._reconcile_now = asyncio.Event()
        self.reconciled = 0  # completed passes (tests and metrics read it)

    def start(self) -> None:
        loops: list[Callable[[], Coroutine[object, object, None]]] = [
            self._expire_loop,
            self._sample_loop,
            self._event_loop,
            self._reconcile_loop,
        ]
        self._tasks = [asyncio.get_running_loop().create_task(loop()) for loop in loops]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ---------- expiry ----------

    async def _expire_loop(self) -> None:
        while True:
            await asyncio.sleep(EXPIRY_PERIOD)
            await self.expire(time.time())

    async def expire(self, now: float) -> None:
        sessions = self._sessions
        for record in list(sessions.records.values()):
            if record.state in LIVE_STATES and record.state is not State.CREATING:
                reason = _expired(
                    record,
                    now,
                    bool(sessions.live.get(record.id, None) and sessions.live[record.id].running),
                )
                if reason:
                    with contextlib.suppress(CodeBeakerError):
                        await sessions.terminate(record.id, reason)
            elif not record.state.live and now - record.update_time > self._retention:
                sessions.records.pop(record.id, None)
                sessions.registry.delete(record.id)

    # ---------- usage ----------

    async def _sample_loop(self) -> None:
        limit = asyncio.Semaphore(SAMPLE_CONCURRENCY)

        async def one(session_id: str) -> None:
            async with limit:
                usage = await self._sessions.sample(session_id)
            record = self._sessions.records.get(session_id)
            if record is not None and record.state in LIVE_STATES:
                if self._on_usage is not None:
                    self._on_usage(record, usage)
                self._sessions.publish_usage(record)

        while True:
            await asyncio.sleep(self._usage_interval)
            ready = [i for i, e in self._sessions.live.items() if e.sandbox is not None]
            await asyncio.gather(*(one(i) for i in ready), return_exceptions=True)

    # ---------- the engine's events ----------

    async def _event_loop(self) -> None:
        while True:
            try:
                async for item in self._sessions.backend.events():
                    if item.action == "reconnected":
                        self._reconcile_now.set()
                    elif item.session_id and item.action in DEATHS:
                        await self._died(item.session_id, item.sandbox_id, item.action)
            except CodeBeakerError as error:
                log.warning("engine events: %s", error)
            await asyncio.sleep(1.0)

    async def _died(self, session_id: str, sandbox_id: str, action: str) -> None:
        sessions = self._sessions
        record = sessions.records.get(session_id)
        entry = sessions.live.get(session_id)
        if record is None or entry is None or entry.ending or record.sandbox_id != sandbox_id:
            return
        how = "was removed" if action == "destroy" else "stopped"
        await sessions.lose(session_id, f"its container {how} outside the server's control")

    # ---------- reconcile ----------

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile()
            except CodeBeakerError as error:
                log.warning("session reconcile skipped: %s", error)
            self._reconcile_now.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._reconcile_interval):
                    await self._reconcile_now.wait()

    async def reconcile(self) -> None:
        with background_phase("session.reconcile"):
            await self._reconcile()
        self.reconciled += 1

    async def _reconcile(self) -> None:
        sessions = self._sessions
        listing = await sessions.backend.listing()
        sessions.spares.drop_lost()
        spare_sessions = sessions.spares.session_ids()
        spare_sandboxes = sessions.spares.sandbox_ids()
        seen: set[str] = set()
        for item in listing:
            if item.session_id:
                seen.add(item.session_id)
                if item.session_id in spare_sessions or item.sandbox_id in spare_sandboxes:
                    continue
                await self._check_session_sandbox(item)
            elif not item.running and item.age > LEFTOVER_AGE:
                await self._remove(item, "an exited sandbox nobody owns")
        for record in list(sessions.records.values()):
            live = record.state in LIVE_STATES and record.state is not State.CREATING
            if live and record.id not in seen:
                await sessions.lose(record.id, "its container vanished")

    async def _check_session_sandbox(self, item: SandboxListing) -> None:
        sessions = self._sessions
        record = sessions.records.get(item.session_id)
        if record is None or not record.state.live:
            await self._remove(item, "a session container no live session owns")
        elif record.state is State.CREATING:
            return
        elif record.sandbox_id != item.sandbox_id:
            await self._remove(item, f"a stray container of session {record.id}")
        elif not item.running:
            await sessions.lose(record.id, "its container stopped")

    async def _remove(self, item: SandboxListing, why: str) -> None:
        event(
            log,
            logging.INFO,
            "session.reconcile_remove",
            f"removing container {item.sandbox_id[:12]}: {why}",
            container=item.sandbox_id[:12],
            session=item.session_id,
            why=why,
        )
        with contextlib.suppress(CodeBeakerError), phase("session.reconcile_remove", why=why):
            await self._sessions.backend.remove(item.sandbox_id)


def _expired(record: SessionRecord, now: float, busy: bool) -> str:
    if now >= record.expire_time:
        return f"its lifetime of {record.lifetime:g}s ended"
    if not busy and now - record.last_activity_time >= record.idle_timeout:
        return f"idle for {record.idle_timeout:g}s"
    return ""
