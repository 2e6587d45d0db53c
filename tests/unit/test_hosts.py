"""Reusable hosts: reuse after a clean run, retirement, demand-following counts, one budget."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from codebeaker.runtimes import hosts
from codebeaker.runtimes.backend import HostEnd
from codebeaker.runtimes.hosts import Budget, HostPool, HostSettings, Reusable
from codebeaker.runtimes.supervisor.conversation import FrameReader

_ids = itertools.count(1)


@dataclass
class FakeHost:
    number: int = field(default_factory=lambda: next(_ids))
    alive: bool = True

    def is_alive(self) -> bool:
        return self.alive

    def write(self, data: bytes) -> None:
        pass

    async def read(self) -> bytes:
        return b""

    def reset_peak_memory(self) -> None:
        pass

    async def set_memory(self, memory_bytes: int) -> None:
        pass

    async def ended(self, within: float) -> HostEnd:
        return HostEnd(0, oom_killed=False)


@dataclass
class Backend:
    launched: list[FakeHost] = field(default_factory=list)
    discarded: list[FakeHost] = field(default_factory=list)
    gate: asyncio.Event | None = None  # when set, launches wait for it

    async def launch(self) -> Reusable[FakeHost]:
        if self.gate is not None:
            await self.gate.wait()
        host = FakeHost()
        self.launched.append(host)
        return Reusable(host, FrameReader(host))

    def discard(self, host: FakeHost) -> None:
        self.discarded.append(host)

    @property
    def alive(self) -> int:
        return len(self.launched) - len(self.discarded)


def pool_of(
    backend: Backend,
    shared: Budget | None = None,
    minimum: int = 1,
    spare: bool = True,
    **settings: float,
) -> HostPool[FakeHost]:
    values = {"minimum": 1, "maximum": 3, "budget": 8, **settings}
    chosen = HostSettings(**values)  # type: ignore[arg-type]
    return HostPool(
        "python",
        launch=backend.launch,
        discard=backend.discard,
        settings=chosen,
        budget=shared or Budget(chosen.budget),
        minimum=minimum,
        retry_delay=0.01,
        spare=spare,
    )


@pytest.fixture(autouse=True)
def quick_ticks(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(hosts, "TICK", 0.01)
    yield


async def settle(condition: object, within: float = 2.0) -> None:
    """Let the pool's background work (launches, its ticks) run until `condition()`
    holds: those are what is under test, and they signal nothing to wait on."""
    async with asyncio.timeout(within):
        while not condition():  # type: ignore[operator]  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def test_a_host_whose_run_ended_cleanly_serves_the_next_run() -> None:
    backend = Backend()
    pool = pool_of(backend)
    pool.start()
    first = await pool.acquire()
    pool.release(first, clean=True)
    second = await pool.acquire()
    assert second.host is first.host and second.runs == 1
    pool.release(second, clean=True)
    await pool.close()
    assert first.host in backend.discarded


async def test_a_run_that_did_not_end_cleanly_retires_its_host_and_it_is_replaced() -> None:
    backend = Backend()
    pool = pool_of(backend)
    pool.start()
    used = await pool.acquire()
    pool.release(used, clean=False)
    assert backend.discarded == [used.host]
    await settle(lambda: pool.stats().ready >= 1)
    assert (await pool.acquire()).host is not used.host
    await pool.close()


async def test_a_host_is_retired_after_its_last_run() -> None:
    backend = Backend()
    pool = pool_of(backend, max_runs=2)
    pool.start()
    for _ in range(2):
        reusable = await pool.acquire()
        pool.release(reusable, clean=True)
    assert backend.discarded == [backend.launched[0]]
    await pool.close()


async def test_a_dead_idle_host_is_never_handed_out() -> None:
    backend = Backend()
    pool = pool_of(backend)
    pool.start()
    await settle(lambda: pool.stats().ready == 1)
    backend.launched[0].alive = False
    reusable = await pool.acquire()
    assert reusable.host is not backend.launched[0]
    assert backend.launched[0] in backend.discarded
    await pool.close()


async def test_concurrent_runs_grow_the_pool_to_its_maximum_and_the_rest_wait() -> None:
    backend = Backend()
    pool = pool_of(backend, maximum=2)
    pool.start()
    taken = [await pool.acquire(), await pool.acquire()]
    third = asyncio.ensure_future(pool.acquire())
    await asyncio.sleep(0.05)
    assert not third.done() and len(backend.launched) == 2
    pool.release(taken[0], clean=True)
    assert (await third).host is taken[0].host
    await pool.close()


async def test_past_demand_keeps_a_spare_then_the_count_falls_back_to_the_minimum() -> None:
    backend = Backend()
    pool = pool_of(backend, idle_timeout=0.2)
    pool.start()
    taken = [await pool.acquire() for _ in range(2)]
    await settle(lambda: backend.alive == 3)  # two in use and a spare
    for reusable in taken:
        pool.release(reusable, clean=True)
    await settle(lambda: backend.alive == 1, within=3.0)
    assert pool.stats().ready == 1
    await pool.close()


async def test_a_pool_without_a_spare_keeps_its_peak_then_nothing_and_is_unused() -> None:
    """A package set's hosts: as many as were busy at once, no spare, none at rest."""
    backend = Backend()
    shared = Budget(8)
    pool = pool_of(backend, shared, minimum=0, spare=False, idle_timeout=0.2)
    pool.start()
    assert pool.unused and backend.alive == 0
    taken = [await pool.acquire() for _ in range(2)]
    assert not pool.unused
    for reusable in taken:
        pool.release(reusable, clean=True)
    await asyncio.sleep(0.05)
    assert backend.alive == 2  # kept for the next runs of the set, no third one
    await settle(lambda: backend.alive == 0, within=3.0)
    assert pool.unused
    await pool.close()
    assert pool not in shared.pools  # a closed pool leaves the budget


async def test_a_full_budget_retires_another_languages_longest_idle_host() -> None:
    backend = Backend()
    budget = Budget(2)
    other = pool_of(backend, budget, minimum=2, maximum=2, budget=2)
    other.start()
    await settle(lambda: other.stats().ready == 2)
    pool = pool_of(backend, budget, minimum=0, maximum=2, budget=2)
    pool.start()
    reusable = await pool.acquire()
    assert backend.discarded == [backend.launched[0]]  # the other's longest idle
    assert budget.total() == 2
    pool.release(reusable, clean=True)
    await asyncio.gather(pool.close(), other.close())


async def test_a_failed_launch_reaches_the_waiting_run() -> None:
    class Broken(Backend):
        async def launch(self) -> Reusable[FakeHost]:
            raise RuntimeError("no such image")

    pool = pool_of(Broken(), minimum=0)
    pool.start()
    with pytest.raises(RuntimeError, match="no such image"):
        await pool.acquire()
    await pool.close()


async def test_sizes_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="minimum"):
        HostSettings(minimum=3, maximum=2)
    with pytest.raises(ValueError, match="positive"):
        HostSettings(max_runs=0)
