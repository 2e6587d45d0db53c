"""The warm pool's logic over a fake launcher: single use, refill, fallback, drain, cancel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest

from codebeaker.runtimes.errors import EngineUnavailable, SandboxFailure
from codebeaker.runtimes.pool import WarmPool


@dataclass
class Item:
    number: int
    alive: bool = True


@dataclass
class Launcher:
    launched: list[Item] = field(default_factory=list)
    discarded: list[Item] = field(default_factory=list)
    failures: list[Exception] = field(default_factory=list)
    gate: asyncio.Event | None = None

    async def launch(self) -> Item:
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        item = Item(len(self.launched) + 1)
        self.launched.append(item)
        return item

    def discard(self, item: Item) -> None:
        self.discarded.append(item)


def make_pool(launcher: Launcher, size: int, parallel: int = 4) -> WarmPool[Item]:
    return WarmPool(
        "test",
        launch=launcher.launch,
        discard=launcher.discard,
        is_alive=lambda item: item.alive,
        size=size,
        parallel=parallel,
        retry_delay=0,
    )


async def settle(pool: WarmPool[Item], ready: int) -> None:
    """Yield to the loop until the pool has `ready` items (no timed sleeps)."""
    for _ in range(10_000):
        stats = pool.stats()
        if stats.ready == ready and stats.launching == 0:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"pool never settled at {ready}: {pool.stats()}")


async def test_fills_to_size_and_hands_out_each_item_once() -> None:
    launcher = Launcher()
    pool = make_pool(launcher, size=3)
    pool.start()
    await settle(pool, 3)
    taken = []
    for _ in range(10):
        taken.append(await pool.acquire())
        pool.refill()
    assert len({item.number for item in taken}) == 10
    await settle(pool, 3)
    assert pool.stats().hits >= 3
    assert len(launcher.launched) == 13
    await pool.close()


async def test_refills_once_the_user_is_done() -> None:
    launcher = Launcher()
    pool = make_pool(launcher, size=2)
    pool.start()
    await settle(pool, 2)
    first = await pool.acquire()
    assert pool.stats().hits == 1
    await settle(pool, 1)  # nothing launches while the item is in use
    assert len(launcher.launched) == 2
    pool.refill()
    await settle(pool, 2)
    assert first not in [await pool.acquire(), await pool.acquire()]
    await pool.close()


async def test_disabled_pool_launches_per_request() -> None:
    launcher = Launcher()
    pool = make_pool(launcher, size=0)
    pool.start()
    await settle(pool, 0)
    assert launcher.launched == []
    item = await pool.acquire()
    assert item.number == 1
    assert pool.stats().misses == 1
    await settle(pool, 0)
    assert len(launcher.launched) == 1
    await pool.close()


async def test_empty_pool_falls_back_to_a_launch_for_the_waiter() -> None:
    launcher = Launcher(gate=asyncio.Event())
    pool = make_pool(launcher, size=1, parallel=1)
    pool.start()
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    assert not waiting.done()
    assert launcher.gate is not None
    launcher.gate.set()
    assert (await waiting).number == 1
    await settle(pool, 1)
    await pool.close()


async def test_launch_failure_reaches_the_waiter() -> None:
    launcher = Launcher(failures=[EngineUnavailable("engine down")])
    pool = make_pool(launcher, size=0)
    with pytest.raises(EngineUnavailable):
        await pool.acquire()
    assert (await pool.acquire()).number == 1
    await pool.close()


async def test_failed_refill_is_retried() -> None:
    launcher = Launcher(failures=[EngineUnavailable("engine down")] * 2)
    pool = make_pool(launcher, size=1)
    pool.start()
    await settle(pool, 1)
    assert pool.stats().launch_failures == 2
    await pool.close()


async def test_dead_items_are_discarded_not_handed_out() -> None:
    launcher = Launcher()
    pool = make_pool(launcher, size=2)
    pool.start()
    await settle(pool, 2)
    launcher.launched[0].alive = False
    item = await pool.acquire()
    assert item.number == 2
    assert launcher.discarded == [launcher.launched[0]]
    await pool.close()


async def test_cancelled_waiter_loses_nothing() -> None:
    launcher = Launcher(gate=asyncio.Event())
    pool = make_pool(launcher, size=0)
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert launcher.gate is not None
    launcher.gate.set()
    await settle(pool, 1)  # the launch it started lands in the pool for the next caller
    assert (await pool.acquire()).number == 1
    await pool.close()
    assert launcher.discarded == []


async def test_close_discards_ready_items_and_fails_waiters() -> None:
    launcher = Launcher()
    pool = make_pool(launcher, size=2)
    pool.start()
    await settle(pool, 2)
    await pool.close()
    assert sorted(item.number for item in launcher.discarded) == [1, 2]
    with pytest.raises(SandboxFailure):
        await pool.acquire()
    assert len(launcher.launched) == 2


async def test_close_fails_a_request_still_waiting() -> None:
    launcher = Launcher(gate=asyncio.Event())
    pool = make_pool(launcher, size=0)
    waiting = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0)
    await pool.close()
    with pytest.raises(SandboxFailure):
        await waiting
