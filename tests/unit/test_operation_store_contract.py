"""The operation store contract (server/operations/store.py), one suite for both stores.

Every test runs against the embedded SQLite store and the Redis store on a real
redis-server (tests/redis_server.py; with CI=true a missing redis-server fails).
Lease expiry uses leases of a fraction of a second and waits for the reclaim
with a deadline; the result TTL is driven through expire(older_than).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from codebeaker.runtimes.errors import InvalidRequest
from codebeaker.server.operations.sqlite_store import SqliteOperationStore
from codebeaker.server.operations.store import (
    NotFound,
    OperationRecord,
    OperationState,
    OperationStore,
    QueueFull,
    TenantQueueFull,
)
from tests.redis_server import RedisServer, redis_server
from tests.unit.operation_stores import SPEC, TRACE, eventually, redis_store

S = OperationState
KINDS = ["sqlite", "redis"]
StoreFactory = Callable[[], OperationStore]
LEASE = 30.0
SHORT_LEASE = 0.3


@pytest.fixture(scope="module")
def shared_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=KINDS)
async def store_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StoreFactory]:
    opened: list[OperationStore] = []
    kind: str = request.param
    prefix = f"test-{uuid.uuid4().hex[:8]}:{{ops}}:"

    def open_store() -> OperationStore:
        store: OperationStore
        if kind == "sqlite":
            store = SqliteOperationStore(tmp_path / "state")
        else:
            store = redis_store(request.getfixturevalue("shared_redis"), prefix)
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
def store(store_factory: StoreFactory) -> OperationStore:
    return store_factory()


async def submit(store: OperationStore, tenant: str = "", request_id: str = "") -> OperationRecord:
    record, created = await store.submit(tenant, request_id, SPEC, TRACE, max_queued=0)
    assert created
    return record


async def claim(store: OperationStore, worker: str = "w1", lease: float = LEASE) -> OperationRecord:
    record = await store.claim(worker, lease, 3)
    assert record is not None
    return record


async def expired_claim(
    store: OperationStore, worker: str, max_attempts: int = 3
) -> OperationRecord:
    async def probe() -> OperationRecord | None:
        return await store.claim(worker, SHORT_LEASE, max_attempts)

    return await eventually(probe, what="a claim after the lease expired")


async def test_submit_queues_a_record_with_what_was_sent(store: OperationStore) -> None:
    before = time.time()
    record, created = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0)
    assert created
    assert (record.tenant, record.request_id, record.state) == ("acme", "r-1", S.QUEUED)
    assert (record.spec, dict(record.trace_context)) == (SPEC, TRACE)
    assert record.name == f"operations/{record.id}" and record.id.replace("-", "").isalnum()
    assert before - 1 <= record.create_time <= time.time() + 1
    assert (record.start_time, record.end_time, record.attempts) == (None, None, 0)
    assert (record.result, record.error, record.cancel_requested) == (None, None, False)
    assert (record.worker, record.lease_expires, record.done) == ("", None, False)
    assert await store.get("acme", record.id) == record


async def test_get_is_scoped_to_the_tenant(store: OperationStore) -> None:
    record = await submit(store, "acme")
    with pytest.raises(NotFound):
        await store.get("other", record.id)
    with pytest.raises(NotFound):
        await store.get("acme", "no-such-id")


async def test_the_same_request_id_returns_the_same_operation(store: OperationStore) -> None:
    first, created = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0)
    again, created_again = await store.submit("acme", "r-1", b"other", {}, max_queued=0)
    assert created and not created_again and again == first
    other_tenant, created = await store.submit("beta", "r-1", SPEC, TRACE, max_queued=0)
    assert created and other_tenant.id != first.id
    without_id = [await submit(store, "acme") for _ in range(2)]
    assert without_id[0].id != without_id[1].id
    # Still the same once it is done.
    running = await claim(store)
    assert await store.finish(running.id, "w1", S.SUCCEEDED, result=b"ok")
    done, created = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0)
    assert not created and done.id == first.id and done.state is S.SUCCEEDED


async def test_concurrent_submits_with_one_request_id_make_one_operation(
    store_factory: StoreFactory,
) -> None:
    stores = [store_factory(), store_factory()]
    answers = await asyncio.gather(
        *(
            stores[n % 2].submit("acme", "same", SPEC, TRACE, max_queued=0)
            for n in range(10)
        )
    )  # fmt: skip
    assert len({record.id for record, _ in answers}) == 1
    assert sum(created for _, created in answers) == 1


async def test_max_queued_refuses_more_with_a_retry_hint(store: OperationStore) -> None:
    first, _ = await store.submit("", "r-1", SPEC, TRACE, max_queued=2)
    await store.submit("", "", SPEC, TRACE, max_queued=2)
    with pytest.raises(QueueFull) as refused:
        await store.submit("", "", SPEC, TRACE, max_queued=2)
    assert refused.value.retry_after > 0
    again, created = await store.submit("", "r-1", SPEC, TRACE, max_queued=2)
    assert again.id == first.id and not created  # a retry of a queued one is not more work
    await claim(store)  # running ones do not count
    await store.submit("", "", SPEC, TRACE, max_queued=2)
    assert (await store.stats()).depth == 2
    await store.submit("", "", SPEC, TRACE, max_queued=0)  # 0: no limit


async def test_the_tenants_quota_refuses_more_of_its_own(store: OperationStore) -> None:
    first, _ = await store.submit("acme", "r-1", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    await store.submit("acme", "", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    with pytest.raises(TenantQueueFull) as refused:
        await store.submit("acme", "r-2", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    assert (refused.value.tenant, refused.value.queued) == ("acme", 2)
    assert isinstance(refused.value, QueueFull) and refused.value.retry_after > 0
    again, created = await store.submit(
        "acme", "r-1", SPEC, TRACE, max_queued=0, tenant_max_queued=2
    )
    assert again.id == first.id and not created  # a retry of a queued one is not more work
    _, created = await store.submit("beta", "", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    assert created  # another tenant's own count
    assert await store.count_queued("acme") == 2
    with pytest.raises(TenantQueueFull):  # the refused request id was not kept
        await store.submit("acme", "r-2", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    await claim(store)  # running ones do not count
    await store.submit("acme", "r-2", SPEC, TRACE, max_queued=0, tenant_max_queued=2)
    await store.submit("acme", "", SPEC, TRACE, max_queued=0)  # None: no limit
    assert await store.count_queued("acme") == 3
    with pytest.raises(TenantQueueFull) as none_allowed:
        await store.submit("beta", "", SPEC, TRACE, max_queued=0, tenant_max_queued=0)
    assert none_allowed.value.queued == 1


async def test_concurrent_submits_never_pass_the_tenants_quota_together(
    store_factory: StoreFactory,
) -> None:
    stores = [store_factory(), store_factory()]  # two servers on one store

    async def one(n: int) -> bool:
        try:
            _, created = await stores[n % 2].submit(
                "acme", f"r-{n}", SPEC, TRACE, max_queued=0, tenant_max_queued=3
            )
        except TenantQueueFull:
            return False
        return created

    created = await asyncio.gather(*(one(n) for n in range(20)))
    assert sum(created) == 3
    assert await stores[0].count_queued("acme") == 3
    page, _ = await stores[1].list("acme", states=None, page_size=50, page_token="")
    assert len(page) == 3


async def test_claim_takes_the_oldest_and_leases_it(store: OperationStore) -> None:
    assert await store.claim("w1", LEASE, 3) is None
    records = [await submit(store) for _ in range(3)]
    before = time.time()
    record = await claim(store, "w1")
    assert record.id == records[0].id
    assert (record.state, record.attempts, record.worker) == (S.RUNNING, 1, "w1")
    assert record.start_time is not None and before - 1 <= record.start_time <= time.time() + 1
    assert record.lease_expires is not None
    assert abs(record.lease_expires - (record.start_time + LEASE)) < 1
    assert [(await claim(store, "w2")).id for _ in range(2)] == [r.id for r in records[1:]]
    assert await store.claim("w1", LEASE, 3) is None


async def test_concurrent_claims_never_hand_out_a_job_twice(store_factory: StoreFactory) -> None:
    stores = [store_factory(), store_factory()]
    submitted = {(await submit(stores[0])).id for _ in range(10)}
    claims = await asyncio.gather(
        *(stores[n % 2].claim(f"w{n}", LEASE, 3) for n in range(16))
    )  # fmt: skip
    claimed = [record.id for record in claims if record is not None]
    assert sorted(claimed) == sorted(submitted)


async def test_renew_extends_the_lease_of_its_holder_only(store: OperationStore) -> None:
    await submit(store)
    record = await claim(store, "w1", lease=5.0)
    assert record.lease_expires is not None
    renewed = await store.renew(record.id, "w1", LEASE)
    assert renewed is not None and renewed.lease_expires is not None
    assert renewed.lease_expires > record.lease_expires + 20
    assert renewed.state is S.RUNNING and not renewed.cancel_requested
    assert await store.renew(record.id, "w2", LEASE) is None
    assert await store.renew("no-such-id", "w1", LEASE) is None


async def test_finish_records_the_outcome(store: OperationStore) -> None:
    for state, result, error in [
        (S.SUCCEEDED, b"response", None),
        (S.FAILED, None, b"status"),
        (S.CANCELLED, None, b"cancelled"),
    ]:
        await submit(store, "acme")
        record = await claim(store)
        assert not await store.finish(record.id, "w2", state, result=result, error=error)
        assert (await store.get("acme", record.id)).state is S.RUNNING
        assert await store.finish(record.id, "w1", state, result=result, error=error)
        done = await store.get("acme", record.id)
        assert (done.state, done.result, done.error, done.done) == (state, result, error, True)
        assert done.end_time is not None and done.end_time >= (done.start_time or 0)
        assert (done.worker, done.lease_expires, done.attempts) == ("", None, 1)
        assert not await store.finish(record.id, "w1", S.SUCCEEDED, result=b"twice")
        assert await store.renew(record.id, "w1", LEASE) is None
    await submit(store)
    record = await claim(store)
    with pytest.raises(ValueError):
        await store.finish(record.id, "w1", S.QUEUED)


async def test_release_hands_unrun_work_back(store: OperationStore) -> None:
    first = await submit(store)
    second = await submit(store)
    record = await claim(store, "w1")
    assert await store.release(record.id, "w2") is None  # not its holder: nothing changes
    assert (await store.get("", record.id)).state is S.RUNNING
    assert await store.release(record.id, "w1") is S.QUEUED
    back = await store.get("", record.id)
    assert (back.state, back.attempts, back.worker, back.lease_expires) == (S.QUEUED, 0, "", None)
    assert await store.renew(record.id, "w1", LEASE) is None
    again = await claim(store, "w2")  # back at its place: before the younger one
    assert (again.id, again.attempts) == (first.id, 1)
    assert (await claim(store, "w2")).id == second.id


async def test_an_expired_lease_is_claimed_again(store_factory: StoreFactory) -> None:
    dead, alive = store_factory(), store_factory()  # two servers, or one and its restart
    record = await submit(dead)
    first = await claim(dead, "dead", lease=SHORT_LEASE)
    assert first.id == record.id
    again = await expired_claim(alive, "alive")
    assert (again.id, again.worker, again.attempts, again.state) == (
        record.id, "alive", 2, S.RUNNING,
    )  # fmt: skip
    assert await dead.renew(record.id, "dead", LEASE) is None  # it lost the lease
    assert not await dead.finish(record.id, "dead", S.SUCCEEDED, result=b"late")
    assert await alive.finish(record.id, "alive", S.SUCCEEDED, result=b"ok")
    assert (await alive.get("", record.id)).result == b"ok"
    assert (await alive.stats()).lease_expiries >= 1


async def test_a_job_that_keeps_killing_its_worker_fails_after_max_attempts(
    store: OperationStore,
) -> None:
    record = await submit(store)
    for attempt in (1, 2):
        claimed = await expired_claim(store, f"w{attempt}", max_attempts=2)
        assert (claimed.id, claimed.attempts) == (record.id, attempt)

    async def failed() -> OperationRecord | None:
        assert await store.claim("w3", SHORT_LEASE, 2) is None
        current = await store.get("", record.id)
        return current if current.done else None

    ended = await eventually(failed, what="FAILED after max_attempts")
    assert (ended.state, ended.attempts, ended.error) == (S.FAILED, 2, None)
    assert ended.end_time is not None and ended.lease_expires is None


async def test_cancel_of_a_queued_job_means_it_never_runs(store: OperationStore) -> None:
    record = await submit(store, "acme")
    assert await store.count_queued("acme") == 1
    cancelled = await store.cancel("acme", record.id)
    assert (cancelled.state, cancelled.done) == (S.CANCELLED, True)
    assert cancelled.end_time is not None
    assert await store.claim("w1", LEASE, 3) is None
    assert await store.count_queued("acme") == 0
    assert (await store.stats()).depth == 0


async def test_cancel_of_a_running_job_is_seen_by_its_worker(store: OperationStore) -> None:
    await submit(store, "acme")
    record = await claim(store)
    asked = await store.cancel("acme", record.id)
    assert (asked.state, asked.cancel_requested) == (S.RUNNING, True)
    renewed = await store.renew(record.id, "w1", LEASE)
    assert renewed is not None and renewed.cancel_requested
    assert await store.finish(record.id, "w1", S.CANCELLED, error=b"cancelled")
    assert (await store.get("acme", record.id)).state is S.CANCELLED


async def test_a_cancelled_job_whose_worker_died_ends_cancelled(store: OperationStore) -> None:
    await submit(store)
    record = await claim(store, lease=SHORT_LEASE)
    await store.cancel("", record.id)

    async def ended() -> OperationRecord | None:
        assert await store.claim("w2", LEASE, 3) is None  # never run again
        current = await store.get("", record.id)
        return current if current.done else None

    assert (await eventually(ended, what="CANCELLED")).state is S.CANCELLED


async def test_cancel_of_a_done_job_changes_nothing(store: OperationStore) -> None:
    await submit(store, "acme")
    record = await claim(store)
    await store.finish(record.id, "w1", S.SUCCEEDED, result=b"ok")
    done = await store.get("acme", record.id)
    assert await store.cancel("acme", record.id) == done
    with pytest.raises(NotFound):
        await store.cancel("beta", record.id)
    with pytest.raises(NotFound):
        await store.cancel("acme", "no-such-id")


async def test_delete_removes_the_record_whatever_its_state(store: OperationStore) -> None:
    queued = await submit(store, "acme", "r-1")
    with pytest.raises(NotFound):
        await store.delete("beta", queued.id)
    await store.delete("acme", queued.id)
    with pytest.raises(NotFound):
        await store.get("acme", queued.id)
    with pytest.raises(NotFound):
        await store.delete("acme", queued.id)
    assert await store.claim("w1", LEASE, 3) is None
    assert (await submit(store, "acme", "r-1")).id != queued.id  # the request id is free again
    running = await claim(store)
    await store.delete("acme", running.id)
    assert await store.renew(running.id, "w1", LEASE) is None
    assert not await store.finish(running.id, "w1", S.SUCCEEDED, result=b"ok")
    assert (await store.stats()).running == 0


async def test_list_is_newest_first_in_pages(store: OperationStore) -> None:
    ids = [(await submit(store, "acme")).id for _ in range(5)]
    await submit(store, "beta")
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page, token = await store.list("acme", states=None, page_size=2, page_token=token)
        assert len(page) <= 2
        seen += [record.id for record in page]
        if not token:
            break
    assert seen == ids[::-1]
    everything, last = await store.list("acme", states=None, page_size=5, page_token="")
    assert [r.id for r in everything] == ids[::-1] and last == ""
    assert await store.list("nobody", states=None, page_size=5, page_token="") == ([], "")


async def test_list_filters_on_states(store: OperationStore) -> None:
    ids = [(await submit(store)).id for _ in range(4)]
    running = await claim(store)
    await store.cancel("", ids[3])
    cancelled = frozenset({S.CANCELLED})
    page, _ = await store.list("", states=cancelled, page_size=10, page_token="")
    assert [r.id for r in page] == [ids[3]]
    queued, token = await store.list("", states=frozenset({S.QUEUED}), page_size=1, page_token="")
    rest, last = await store.list("", states=frozenset({S.QUEUED}), page_size=1, page_token=token)
    assert [r.id for r in queued + rest] == [ids[2], ids[1]] and last == ""
    active = frozenset({S.QUEUED, S.RUNNING})
    page, _ = await store.list("", states=active, page_size=10, page_token="")
    assert [r.id for r in page] == [ids[2], ids[1], running.id]


async def test_a_page_token_not_issued_by_the_store_is_refused(store: OperationStore) -> None:
    for token in ["garbage", "bm90IGEgdG9rZW4=", "!!"]:
        with pytest.raises(InvalidRequest) as refused:
            await store.list("", states=None, page_size=10, page_token=token)
        assert refused.value.field == "page_token"


async def test_count_queued_is_per_tenant(store: OperationStore) -> None:
    for tenant in ["acme", "acme", "beta"]:
        await submit(store, tenant)
    assert [await store.count_queued(t) for t in ("acme", "beta", "")] == [2, 1, 0]
    await claim(store)
    assert await store.count_queued("acme") == 1


async def test_wait_returns_when_done(store: OperationStore) -> None:
    record = await submit(store, "acme")
    started = time.monotonic()
    still = await store.wait("acme", record.id, 0.3)
    assert still.state is S.QUEUED and time.monotonic() - started >= 0.25
    waiting = asyncio.create_task(store.wait("acme", record.id, 30))
    running = await claim(store)
    await store.finish(running.id, "w1", S.SUCCEEDED, result=b"ok")
    done = await asyncio.wait_for(waiting, 10)
    assert (done.state, done.result) == (S.SUCCEEDED, b"ok")
    assert (await store.wait("acme", record.id, 30)).state is S.SUCCEEDED  # at once
    with pytest.raises(NotFound):
        await store.wait("beta", record.id, 1)


async def test_expire_deletes_done_records_older_than_the_cutoff(store: OperationStore) -> None:
    done = await submit(store, "", "r-1")
    await claim(store)
    await store.finish(done.id, "w1", S.SUCCEEDED, result=b"ok")
    kept_running = await submit(store)
    await claim(store)
    queued = await submit(store)
    end_time = (await store.get("", done.id)).end_time
    assert end_time is not None
    assert await store.expire(end_time) == 0  # strictly older only
    assert await store.expire(end_time + 0.01) == 1
    with pytest.raises(NotFound):
        await store.get("", done.id)
    assert (await submit(store, "", "r-1")).id != done.id
    assert await store.expire(time.time() + 3600) == 0  # queued and running ones stay
    for alive in (kept_running, queued):
        assert not (await store.get("", alive.id)).done
    page, _ = await store.list("", states=None, page_size=10, page_token="")
    assert done.id not in {r.id for r in page}


async def test_stats_count_what_waits_and_runs(store: OperationStore) -> None:
    empty = await store.stats()
    assert (empty.depth, empty.running, empty.oldest_queued_age) == (0, 0, 0.0)
    for _ in range(3):
        await submit(store)
    record = await claim(store)
    await store.finish(record.id, "w1", S.FAILED, error=b"status")
    await claim(store)
    stats = await store.stats()
    assert (stats.depth, stats.running) == (1, 1)
    assert 0 <= stats.oldest_queued_age < 60
    assert stats.by_state[S.FAILED] == 1 and stats.by_state[S.QUEUED] == 1
    await store.ping()


async def test_a_released_job_that_was_asked_to_cancel_ends_cancelled(
    store: OperationStore,
) -> None:
    await submit(store)
    record = await claim(store)
    await store.cancel("", record.id)
    waiting = asyncio.create_task(store.wait("", record.id, 30))
    # A graceful stop hands it back: it ends CANCELLED and never runs again.
    assert await store.release(record.id, "w1") is S.CANCELLED
    assert await store.claim("w2", LEASE, 3) is None
    ended = await store.get("", record.id)
    assert (ended.state, ended.worker, ended.lease_expires) == (S.CANCELLED, "", None)
    assert ended.end_time is not None and ended.attempts == 1
    assert (await asyncio.wait_for(waiting, 10)).state is S.CANCELLED  # its waiters are woken
    assert (await store.stats()).running == 0
    assert await store.release(record.id, "w1") is None  # done: nothing changes
