"""A warm pool: single-use resources launched ahead of time, refilled off the request path.

The pool keeps `size` launched items ready. A request takes one (a hit) and,
once it is done with it, calls `refill()`: the replacement is launched then, in
the background, so that launching (CPU-heavy work in the engine) does not
compete with the program for the machine. Nothing is ever handed out twice.
When none is ready (a miss) the request waits for the next launch to finish,
which the pool starts for it at once — so an empty or disabled (size 0) pool
degrades to a cold start, never to a failure, and never launches more than
`size` + waiting requests. A launch that fails is handed to a waiting request
as its error; with nobody waiting, the pool retries after a pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.telemetry import annotate

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolSettings:
    """How many started hosts to keep waiting, for which languages."""

    # Hosts kept started and waiting, per language (0: launch per request).
    size: int = 2
    # Languages that get a pool (None: all); the others launch per request.
    languages: frozenset[str] | None = None
    # Launches one language's pool runs at once (an engine serialises much of it).
    parallel: int = 4

    def __post_init__(self) -> None:
        if self.size < 0 or self.parallel < 1:
            raise ValueError("pool_size must be >= 0 and pool_parallel >= 1")

    def pooled(self, language: str) -> bool:
        return self.languages is None or language in self.languages


@dataclass(frozen=True)
class PoolStats:
    size: int
    ready: int
    launching: int
    waiting: int
    hits: int
    misses: int
    launch_failures: int


class WarmPool(Generic[T]):
    def __init__(
        self,
        name: str,
        *,
        launch: Callable[[], Awaitable[T]],
        discard: Callable[[T], None],
        is_alive: Callable[[T], bool],
        size: int,
        parallel: int,
        retry_delay: float = 2.0,
    ) -> None:
        if size < 0 or parallel < 1:
            raise ValueError("pool size must be >= 0 and parallel >= 1")
        self.name = name
        self._launch = launch
        self._discard = discard
        self._is_alive = is_alive
        self._size = size
        self._parallel = parallel
        self._retry_delay = retry_delay
        self._ready: deque[T] = deque()
        self._waiters: deque[asyncio.Future[T]] = deque()
        self._launching = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._hits = 0
        self._misses = 0
        self._failures = 0

    def stats(self) -> PoolStats:
        return PoolStats(
            size=self._size,
            ready=len(self._ready),
            launching=self._launching,
            waiting=len(self._waiters),
            hits=self._hits,
            misses=self._misses,
            launch_failures=self._failures,
        )

    def start(self) -> None:
        """Begin filling the pool (needs a running event loop)."""
        self._top_up()

    def refill(self) -> None:
        """Launch replacements for items taken; call when done with an acquired item."""
        self._top_up()

    async def acquire(self) -> T:
        """A launched item for exactly one use; waits for a launch on a miss."""
        if self._closed:
            raise SandboxFailure(f"{self.name} pool is shut down")
        while self._ready:
            item = self._ready.popleft()
            if self._is_alive(item):
                self._hits += 1
                annotate(pool="hit")
                return item
            self._discard(item)
        self._misses += 1
        annotate(pool="miss")
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._top_up()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._offer(waiter.result())  # it arrived as we were cancelled: keep it
            raise

    def _top_up(self) -> None:
        if self._closed:
            return
        wanted = self._size + len(self._waiters) - len(self._ready) - self._launching
        while wanted > 0 and self._launching < self._parallel:
            wanted -= 1
            self._launching += 1
            task = asyncio.get_running_loop().create_task(self._launch_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _launch_one(self) -> None:
        try:
            item = await self._launch()
        except Exception as error:
            self._failures += 1
            waiter = self._next_waiter()
            if waiter is not None:
                waiter.set_exception(error)
            else:
                log.warning(
                    "%s pool: launch failed, retrying in %.0fs: %s",
                    self.name,
                    self._retry_delay,
                    error,
                )
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(self._retry_delay)
            self._launching -= 1
            self._top_up()
            return
        self._launching -= 1
        self._offer(item)
        self._top_up()

    def _offer(self, item: T) -> None:
        waiter = self._next_waiter()
        if waiter is not None:
            waiter.set_result(item)
        elif self._closed:
            self._discard(item)
        else:
            self._ready.append(item)

    def _next_waiter(self) -> asyncio.Future[T] | None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                return waiter
        return None

    async def close(self) -> None:
        """Stop refilling, fail waiters, let launches land, discard every item."""
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(SandboxFailure(f"{self.name} pool is shutting down"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._ready:
            self._discard(self._ready.popleft())
