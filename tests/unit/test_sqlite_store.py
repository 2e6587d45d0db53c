"""The embedded SQLite store's own behaviour: its directory, restarts, wall-clock leases.

(What every store must do is in test_operation_store_contract.py.)
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from codebeaker.runtimes.errors import InvalidRequest, NotFound
from codebeaker.server.operations.sqlite_store import SqliteOperationStore
from codebeaker.server.operations.store import OperationState, QueueFull, StoreUnavailable


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_state_dir_is_private_and_created(tmp_path: Path) -> None:
    state = tmp_path / "a" / "state"
    store = SqliteOperationStore(state)
    await store.submit("", "", b"spec", {}, max_queued=0)
    await store.close()
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "operations.sqlite3").stat().st_mode) == 0o600


async def test_records_survive_a_restart_and_leases_are_wall_clock(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteOperationStore(tmp_path, clock=clock)
    queued, _ = await store.submit("t", "r1", b"one", {"traceparent": "x"}, max_queued=0)
    running, _ = await store.submit("t", "", b"two", {}, max_queued=0)
    claimed = await store.claim("w1", 30.0, 3)
    assert claimed is not None and claimed.id == queued.id
    await store.close()  # as if killed: nothing was finished or released

    again = SqliteOperationStore(tmp_path, clock=clock)
    assert (await again.get("t", queued.id)).state is OperationState.RUNNING
    assert (await again.get("t", queued.id)).trace_context == {"traceparent": "x"}
    # The lease has not run out: the next claim takes the other job.
    second = await again.claim("w2", 30.0, 3)
    assert second is not None and second.id == running.id
    assert await again.claim("w2", 30.0, 3) is None
    clock.now += 31.0
    reclaimed = await again.claim("w2", 30.0, 3)
    assert reclaimed is not None and reclaimed.attempts == 2
    assert (await again.stats()).lease_expiries == 2
    # The first worker lost its lease: it may neither renew nor finish.
    assert await again.renew(queued.id, "w1", 30.0) is None
    assert not await again.finish(queued.id, "w1", OperationState.SUCCEEDED, result=b"r")
    await again.close()


async def test_idempotent_submit_paging_and_bad_tokens(tmp_path: Path) -> None:
    store = SqliteOperationStore(tmp_path)
    first, created = await store.submit("t", "same", b"a", {}, max_queued=0)
    again, created_again = await store.submit("t", "same", b"b", {}, max_queued=0)
    assert created and not created_again and again.id == first.id
    other, created_other = await store.submit("u", "same", b"a", {}, max_queued=0)
    assert created_other and other.id != first.id
    for _ in range(4):
        await store.submit("t", "", b"x", {}, max_queued=0)
    page, token = await store.list("t", states=None, page_size=2, page_token="")
    seen = [record.id for record in page]
    while token:
        page, token = await store.list("t", states=None, page_size=2, page_token=token)
        seen += [record.id for record in page]
    assert len(seen) == 5 and seen[-1] == first.id and len(set(seen)) == 5
    with pytest.raises(InvalidRequest) as bad:
        await store.list("t", states=None, page_size=2, page_token="garbage!")
    assert bad.value.field == "page_token"
    with pytest.raises(NotFound):
        await store.get("u", first.id)
    with pytest.raises(QueueFull):
        await store.submit("t", "", b"x", {}, max_queued=5)
    await store.close()


async def test_max_attempts_and_cancel_of_an_expired_lease(tmp_path: Path) -> None:
    clock = Clock()
    store = SqliteOperationStore(tmp_path, clock=clock)
    doomed, _ = await store.submit("", "", b"a", {}, max_queued=0)
    for attempt in (1, 2):
        claimed = await store.claim(f"w{attempt}", 10.0, 2)
        assert claimed is not None and claimed.attempts == attempt
        clock.now += 11.0
    assert await store.claim("w3", 10.0, 2) is None
    failed = await store.get("", doomed.id)
    assert failed.state is OperationState.FAILED and failed.error is None
    assert failed.attempts == 2

    asked, _ = await store.submit("", "", b"b", {}, max_queued=0)
    assert await store.claim("w", 10.0, 2) is not None
    assert (await store.cancel("", asked.id)).cancel_requested
    clock.now += 11.0
    assert await store.claim("w", 10.0, 2) is None
    assert (await store.get("", asked.id)).state is OperationState.CANCELLED
    await store.close()


async def test_an_unwritable_database_is_unavailable(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "operations.sqlite3").mkdir()  # a directory where the file should be
    store = SqliteOperationStore(state)
    with pytest.raises(StoreUnavailable):
        await store.ping()
    await store.close()
