"""What only the Redis store has: a Redis that goes away and comes back, servers that share it,
and Redis's own expiry of done records. A real redis-server each (tests/redis_server.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from codebeaker.server.operations.redis_store import WAIT_RECHECK, RedisOperationStore
from codebeaker.server.operations.store import NotFound, OperationState, StoreUnavailable
from tests.redis_server import RedisServer, redis_server
from tests.unit.operation_stores import SPEC, TRACE, eventually, redis_store

S = OperationState
PREFIX = "cb-test:{ops}:"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with redis_server(appendonly=True) as started:
        yield started


@pytest.fixture
async def stores(server: RedisServer) -> AsyncIterator[list[RedisOperationStore]]:
    opened = [redis_store(server, PREFIX), redis_store(server, PREFIX)]
    yield opened
    for store in opened:
        await store.close()


async def test_redis_down_is_store_unavailable_and_the_store_recovers(
    server: RedisServer, stores: list[RedisOperationStore]
) -> None:
    store = stores[0]
    queued, _ = await store.submit("", "r-1", SPEC, TRACE, max_queued=0)
    server.stop()
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.submit("", "", SPEC, TRACE, max_queued=0),
        lambda: store.get("", queued.id),
        lambda: store.list("", states=None, page_size=10, page_token=""),
        lambda: store.count_queued(""),
        lambda: store.claim("w1", 30, 3),
        lambda: store.renew(queued.id, "w1", 30),
        lambda: store.finish(queued.id, "w1", S.SUCCEEDED, result=b"ok"),
        lambda: store.release(queued.id, "w1"),
        lambda: store.cancel("", queued.id),
        lambda: store.delete("", queued.id),
        lambda: store.wait("", queued.id, 1),
        lambda: store.expire(time.time()),
        store.stats,
        store.ping,
    ]
    for call in calls:
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            await call()
        assert time.monotonic() - started < 5  # refused promptly, not hung
    server.start()  # same port and files: the job is still there
    await store.ping()
    claimed = await store.claim("w1", 30, 3)
    assert claimed is not None and claimed.id == queued.id
    assert await store.finish(claimed.id, "w1", S.SUCCEEDED, result=b"ok")
    again, created = await store.submit("", "r-1", SPEC, TRACE, max_queued=0)
    assert not created and again.state is S.SUCCEEDED


async def test_a_wait_outlives_a_redis_restart(
    server: RedisServer, stores: list[RedisOperationStore]
) -> None:
    waiter, worker = stores
    record, _ = await waiter.submit("", "", SPEC, TRACE, max_queued=0)
    waiting = asyncio.create_task(waiter.wait("", record.id, 60))
    claimed = await worker.claim("w1", 30, 3)
    assert claimed is not None
    server.restart()
    await worker.finish(claimed.id, "w1", S.SUCCEEDED, result=b"ok")
    done = await asyncio.wait_for(waiting, 20)
    assert done.state is S.SUCCEEDED


async def test_a_wait_is_woken_by_another_server_at_once(
    stores: list[RedisOperationStore],
) -> None:
    waiter, worker = stores
    record, _ = await waiter.submit("", "", SPEC, TRACE, max_queued=0)
    claimed = await worker.claim("w1", 30, 3)
    assert claimed is not None
    waiting = asyncio.create_task(waiter.wait("", record.id, 60))
    await asyncio.sleep(WAIT_RECHECK + 0.5)  # past its first re-read: only a message wakes it
    finished = time.monotonic()
    await worker.finish(claimed.id, "w1", S.SUCCEEDED, result=b"ok")
    done = await asyncio.wait_for(waiting, 20)
    assert done.state is S.SUCCEEDED
    assert time.monotonic() - finished < WAIT_RECHECK / 2  # published, not polled


async def test_two_servers_split_the_queue(stores: list[RedisOperationStore]) -> None:
    ids = {(await stores[0].submit("", "", SPEC, TRACE, max_queued=0))[0].id for _ in range(20)}
    taken: dict[int, list[str]] = {0: [], 1: []}

    async def work(n: int) -> None:
        while (record := await stores[n].claim(f"server-{n}", 30, 3)) is not None:
            taken[n].append(record.id)
            await asyncio.sleep(0.01)  # the run
            assert await stores[n].finish(record.id, f"server-{n}", S.SUCCEEDED, result=b"ok")

    await asyncio.gather(work(0), work(1))
    assert sorted(taken[0] + taken[1]) == sorted(ids)  # each once
    assert taken[0] and taken[1]
    assert (await stores[1].stats()).by_state[S.SUCCEEDED] == 20


async def test_done_records_expire_by_themselves(server: RedisServer) -> None:
    store = redis_store(server, "cb-ttl:{ops}:", result_ttl=0.5)
    try:
        record, _ = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0)
        claimed = await store.claim("w1", 30, 3)
        assert claimed is not None
        await store.finish(record.id, "w1", S.SUCCEEDED, result=b"ok")
        assert (await store.get("acme", record.id)).result == b"ok"

        async def gone() -> bool:
            try:
                await store.get("acme", record.id)
            except NotFound:
                return True
            return False

        await eventually(gone, what="the record expired by Redis")
        assert await store.list("acme", states=None, page_size=10, page_token="") == ([], "")
        again, created = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0)
        assert created and again.id != record.id
        assert await store.expire(time.time() + 1) == 1  # its index entries, cleaned
        assert (await store.stats()).by_state[S.SUCCEEDED] == 0
    finally:
        await store.close()
