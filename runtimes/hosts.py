"""Sandbox hosts kept and reused: many runs per host, a fresh nested sandbox for each.

A host (a hardened container whose supervisor runs in host mode) serves one
run at a time and says READY when the next run's sandbox is set up. One
`HostPool` holds the hosts of one (language, fixed limits) kind: a run takes
an idle host, or waits for the first of a launch started for it and a host
coming back. The number of hosts follows demand: each pool keeps as many as
the most it had busy at once within the last `idle_timeout` seconds, plus one
spare while it has recent demand, never fewer than its minimum nor more than
its maximum, and all pools together stay within one budget — a pool with a run
waiting and no room retires the longest-idle host of another. A host is retired after
`max_runs` runs or `max_age` seconds, and whenever a run did not end cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Generic, Protocol

from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanContext

from codebeaker.runtimes.backend import H
from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.pool import PoolStats
from codebeaker.runtimes.supervisor.conversation import FrameReader
from codebeaker.runtimes.telemetry import annotate

log = logging.getLogger(__name__)
TICK = 1.0  # seconds between checks for hosts to retire


@dataclass(frozen=True)
class HostSettings:
    """How many hosts to keep and for how long (DESIGN.md § The direction)."""

    minimum: int = 1  # hosts kept per language at the default limits, demand or not
    maximum: int = 8  # hosts of one kind at once
    budget: int = 16  # hosts of every kind together
    max_runs: int = 1000  # runs after which a host is replaced
    max_age: float = 900.0  # seconds after which a host is replaced
    idle_timeout: float = 60.0  # how far back demand is remembered
    parallel: int = 2  # launches of one kind at once

    def __post_init__(self) -> None:
        if not 0 <= self.minimum <= self.maximum <= self.budget or self.maximum < 1:
            raise ValueError("host sizes need 0 <= minimum <= maximum <= budget, maximum >= 1")
        if self.max_runs < 1 or self.max_age <= 0 or self.idle_timeout <= 0 or self.parallel < 1:
            raise ValueError("host_max_runs, host_max_age, host_idle and parallel must be positive")


@dataclass
class Reusable(Generic[H]):
    """A host in host mode, with its frame stream (kept across runs) and its record."""

    host: H
    frames: FrameReader
    origin: SpanContext = INVALID_SPAN_CONTEXT  # its launch, which each run links to
    born: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    runs: int = 0

    def is_alive(self) -> bool:
        return self.host.is_alive()


class _Member(Protocol):
    @property
    def total(self) -> int: ...
    @property
    def idle_count(self) -> int: ...
    def longest_idle(self) -> float: ...
    def retire_longest_idle(self) -> None: ...


class Budget:
    """The hosts of every pool together; a full budget makes room by retiring an idle one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pools: list[_Member] = []

    def total(self) -> int:
        return sum(pool.total for pool in self.pools)

    def make_room(self, asking: _Member, evict: bool) -> bool:
        """Whether `asking` may launch one more host; with `evict` (a run is waiting,
        not just a spare wanted), by retiring another pool's longest-idle host."""
        if self.total() < self.size:
            return True
        if not evict:
            return False
        idle = [(p.longest_idle(), p) for p in self.pools if p is not asking and p.idle_count]
        if not idle:
            return False
        _, pool = min(idle, key=lambda item: item[0])
        pool.retire_longest_idle()
        return True


class HostPool(Generic[H]):
    def __init__(
        self,
        name: str,
        *,
        launch: Callable[[], Awaitable[Reusable[H]]],
        discard: Callable[[H], None],
        settings: HostSettings,
        budget: Budget,
        minimum: int,
        retry_delay: float = 2.0,
        spare: bool = True,
    ) -> None:
        self.name = name
        self._launch = launch
        self._discard = discard
        self._settings = settings
        self._budget = budget
        self._minimum = minimum
        self._spare = spare  # one host beyond the recent peak while there is demand
        self._retry_delay = retry_delay
        self._idle: deque[Reusable[H]] = deque()
        self._waiters: deque[asyncio.Future[Reusable[H]]] = deque()
        self._out = 0  # hosts handed to runs
        self._launching = 0
        self._demand: deque[tuple[float, int]] = deque()  # (when, busy then)
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._hits = self._misses = self._failures = 0
        budget.pools.append(self)

    @property
    def total(self) -> int:
        return len(self._idle) + self._out + self._launching

    @property
    def idle_count(self) -> int:
        return len(self._idle)

    @property
    def unused(self) -> bool:
        """No host, none wanted, nobody waiting: the pool may be closed and forgotten."""
        return not self.total and not self._waiters and not self._wanted()

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self._wanted(),
            ready=len(self._idle),
            launching=self._launching,
            waiting=len(self._waiters),
            hits=self._hits,
            misses=self._misses,
            launch_failures=self._failures,
        )

    def start(self) -> None:
        """Launch the minimum and begin retiring stale hosts (needs a running loop)."""
        self._spawn(self._tick())
        self._top_up()

    async def acquire(self) -> Reusable[H]:
        """A ready host for one run; give it back with `release`."""
        if self._closed:
            raise SandboxFailure(f"{self.name} hosts are shut down")
        self._note_demand()
        while self._idle:
            reusable = self._idle.pop()  # the most recently used: the rest may age out
            if reusable.is_alive():
                self._hits += 1
                self._out += 1
                annotate(pool="hit")
                return reusable
            self._discard(reusable.host)
        self._misses += 1
        annotate(pool="miss")
        waiter: asyncio.Future[Reusable[H]] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._top_up()
        try:
            return await waiter  # counted as out when it was handed over
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._out -= 1
                self._offer(waiter.result())  # it arrived as we gave up: keep it
            raise

    def release(self, reusable: Reusable[H], clean: bool) -> None:
        """Take a host back after its run: kept if the run ended cleanly and it is
        neither too old nor too used, else retired (and replaced if still wanted)."""
        self._out -= 1
        reusable.runs += 1
        worn = reusable.runs >= self._settings.max_runs or self._aged(reusable)
        if not clean or worn or self._closed:
            self._discard(reusable.host)
        else:
            self._offer(reusable)
        self._top_up()

    def longest_idle(self) -> float:
        return self._idle[0].idle_since if self._idle else float("inf")

    def retire_longest_idle(self) -> None:
        if self._idle:
            self._discard(self._idle.popleft().host)

    def _aged(self, reusable: Reusable[H]) -> bool:
        return time.monotonic() - reusable.born >= self._settings.max_age

    def _note_demand(self) -> None:
        now = time.monotonic()
        self._demand.append((now, self._out + len(self._waiters) + 1))  # with this run
        while self._demand and self._demand[0][0] < now - self._settings.idle_timeout:
            self._demand.popleft()

    def _wanted(self) -> int:
        """Hosts this pool should have: recent peak use plus a spare, within its bounds."""
        recent = time.monotonic() - self._settings.idle_timeout
        peak = max((busy for when, busy in self._demand if when >= recent), default=0)
        wanted = peak + 1 if peak and self._spare else peak
        in_use = self._out + len(self._waiters)
        return min(max(wanted, self._minimum, in_use), self._settings.maximum)

    def _top_up(self) -> None:
        if self._closed:
            return
        while (
            self._launching < self._settings.parallel
            and self.total < self._wanted()
            and self._budget.make_room(self, evict=self._launching < len(self._waiters))
        ):
            self._launching += 1
            self._spawn(self._launch_one())

    async def _launch_one(self) -> None:
        try:
            reusable = await self._launch()
        except Exception as error:
            self._failures += 1
            self._launching -= 1
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_exception(error)
                return
            log.warning(
                "%s hosts: launch failed, retrying in %.0fs: %s",
                self.name,
                self._retry_delay,
                error,
            )
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.sleep(self._retry_delay)
            self._top_up()
            return
        self._launching -= 1
        self._offer(reusable)
        self._top_up()

    def _offer(self, reusable: Reusable[H]) -> None:
        waiter = self._next_waiter()
        if waiter is not None:
            self._out += 1
            waiter.set_result(reusable)
        elif self._closed:
            self._discard(reusable.host)
        else:
            reusable.idle_since = time.monotonic()
            self._idle.append(reusable)

    def _next_waiter(self) -> asyncio.Future[Reusable[H]] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    async def _tick(self) -> None:
        """Retire hosts past their age, and idle ones beyond what demand wants."""
        while not self._closed:
            await asyncio.sleep(TICK)
            now = time.monotonic()
            for reusable in [r for r in self._idle if self._aged(r)]:
                self._idle.remove(reusable)
                self._discard(reusable.host)
            while self._idle and self.total > self._wanted():
                oldest = self._idle[0]
                if now - oldest.idle_since < self._settings.idle_timeout:
                    break
                self.retire_longest_idle()
            self._top_up()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop launching, fail waiters, let launches land, retire every idle host."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(SandboxFailure(f"{self.name} hosts are shutting down"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._idle:
            self._discard(self._idle.popleft().host)
        if self in self._budget.pools:
            self._budget.pools.remove(self)
