"""Bounded concurrency: at most N executions at once, a short wait, then refusal.

Beyond the limit a call waits up to `wait` seconds for a slot and is then
refused with CapacityExhausted (RESOURCE_EXHAUSTED), so load never turns into
an unbounded pile of containers. The wait is the execution's first phase.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from codebeaker.runtimes.errors import CapacityExhausted
from codebeaker.runtimes.telemetry import phase


class Admission:
    def __init__(self, limit: int, wait: float) -> None:
        self._limit = limit
        self.limit = limit
        self._wait = wait
        self._slots = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.waiting = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        self.waiting += 1
        try:
            with phase("admission", waited=self._slots.locked()):
                try:
                    async with asyncio.timeout(self._wait):
                        await self._slots.acquire()
                except TimeoutError:
                    raise CapacityExhausted(
                        f"all {self._limit} execution slots are busy; retry shortly",
                        retry_after=max(self._wait, 1.0),
                    ) from None
        finally:
            self.waiting -= 1
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self._slots.release()
