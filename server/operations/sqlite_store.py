"""The embedded operation store: one SQLite database under the state directory.

Nothing to set up: the database (`operations.sqlite3`, WAL mode) is created on
first use in the state directory, which is created with mode 0700 (specs and
results are at rest there). The stdlib `sqlite3` driver blocks, so every query
runs on one thread of the store's own (a single connection, so no locking
between threads), never on the event loop.

Leases are wall-clock times written in the database, so a server that was
SIGKILLed and restarted on the same directory finds its RUNNING jobs and
reclaims them once their leases have run out. `wait` is woken by this
process's own state changes, and re-reads every `poll` seconds besides.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from codebeaker.server.operations import sqlite_rows
from codebeaker.server.operations.sqlite_rows import COLUMNS, ensure_private_dir
from codebeaker.server.operations.store import (
    DONE_STATES,
    OperationRecord,
    OperationState,
    QueueFull,
    QueueStats,
    StoreUnavailable,
    TenantQueueFull,
    operation_not_found,
)

T = TypeVar("T")
DATABASE = "operations.sqlite3"
QUEUE_FULL_RETRY = 1.0


class SqliteOperationStore:
    def __init__(
        self,
        state_dir: Path,
        *,
        clock: Callable[[], float] = time.time,
        poll: float = 0.5,
    ) -> None:
        self._dir = state_dir
        self._path = state_dir / DATABASE
        self._clock = clock
        self._poll = poll
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="operations-db")
        self._db: sqlite3.Connection | None = None
        self._changed: asyncio.Event | None = None
        self._lease_expiries = 0
        self._closed = False

    # -- the one thread that talks to the database -------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            ensure_private_dir(self._dir)  # on first use: a server that never queues makes none
            fresh = not self._path.exists()
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            if fresh:
                os.chmod(self._path, 0o600)
            try:
                db.execute("PRAGMA busy_timeout=5000")
                sqlite_rows.set_up(db)
            except BaseException:
                db.close()
                raise
            self._db = db
        return self._db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreUnavailable("the operation store is closed")

        def job() -> T:
            db = self._connect()
            db.execute("BEGIN IMMEDIATE")
            try:
                value = work(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return value

        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the operation store at {self._path} failed: {error}") from None

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    # -- the protocol --------------------------------------------------------------------------

    async def submit(
        self,
        tenant: str,
        request_id: str,
        spec: bytes,
        trace_context: Mapping[str, str],
        *,
        max_queued: int,
        tenant_max_queued: int | None = None,
    ) -> tuple[OperationRecord, bool]:
        now = self._clock()
        new_id = uuid.uuid4().hex

        def work(db: sqlite3.Connection) -> tuple[OperationRecord, bool]:
            if request_id:
                row = db.execute(
                    f"SELECT {COLUMNS} FROM operations WHERE tenant = ? AND request_id = ?",
                    (tenant, request_id),
                ).fetchone()
                if row is not None:
                    return sqlite_rows.record(row), False
            if tenant_max_queued is not None:
                (mine,) = db.execute(
                    "SELECT count(*) FROM operations WHERE tenant = ? AND state = 'QUEUED'",
                    (tenant,),
                ).fetchone()
                if mine >= tenant_max_queued:
                    raise TenantQueueFull(tenant, int(mine))
            if max_queued > 0:
                (depth,) = db.execute(
                    "SELECT count(*) FROM operations WHERE state = 'QUEUED'"
                ).fetchone()
                if depth >= max_queued:
                    raise QueueFull(
                        f"{depth} operations are queued, the server's --max-queued; retry later",
                        QUEUE_FULL_RETRY,
                    )
            db.execute(
                "INSERT INTO operations (id, tenant, request_id, state, spec, trace_context, "
                "create_time) VALUES (?, ?, ?, 'QUEUED', ?, ?, ?)",
                (new_id, tenant, request_id, spec, json.dumps(dict(trace_context)), now),
            )
            return sqlite_rows.get(db, tenant, new_id), True

        return await self._run(work)

    async def get(self, tenant: str, id: str) -> OperationRecord:
        return await self._run(lambda db: sqlite_rows.get(db, tenant, id))

    async def list(
        self,
        tenant: str,
        *,
        states: frozenset[OperationState] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[OperationRecord], str]:
        before = sqlite_rows.parse_token(page_token)
        wanted = sorted(states) if states is not None else list(OperationState)

        def work(db: sqlite3.Connection) -> tuple[list[OperationRecord], str]:
            marks = ", ".join("?" for _ in wanted)
            rows = db.execute(
                f"SELECT seq, {COLUMNS} FROM operations WHERE tenant = ? AND seq < ? "
                f"AND state IN ({marks}) ORDER BY seq DESC LIMIT ?",
                (tenant, before, *wanted, page_size + 1),
            ).fetchall()
            more = len(rows) > page_size
            rows = rows[:page_size]
            next_token = sqlite_rows.token(rows[-1][0]) if more and rows else ""
            return [sqlite_rows.record(row[1:]) for row in rows], next_token

        return await self._run(work)

    async def count_queued(self, tenant: str) -> int:
        def work(db: sqlite3.Connection) -> int:
            query = "SELECT count(*) FROM operations WHERE tenant = ? AND state = 'QUEUED'"
            count: int = db.execute(query, (tenant,)).fetchone()[0]
            return count

        return await self._run(work)

    async def claim(
        self, worker: str, lease_seconds: float, max_attempts: int
    ) -> OperationRecord | None:
        now = self._clock()

        def work(db: sqlite3.Connection) -> tuple[OperationRecord | None, int]:
            expired = sqlite_rows.reclaim_expired(db, now, max_attempts)
            row = db.execute(
                "SELECT id FROM operations WHERE state = 'QUEUED' ORDER BY seq LIMIT 1"
            ).fetchone()
            if row is None:
                return None, expired
            db.execute(
                "UPDATE operations SET state = 'RUNNING', attempts = attempts + 1, worker = ?, "
                "lease_expires = ?, start_time = ? WHERE id = ?",
                (worker, now + lease_seconds, now, row[0]),
            )
            return sqlite_rows.get_any(db, row[0]), expired

        record, expired = await self._run(work)
        self._lease_expiries += expired
        if expired:
            self._notify()
        return record

    async def renew(self, id: str, worker: str, lease_seconds: float) -> OperationRecord | None:
        now = self._clock()

        def work(db: sqlite3.Connection) -> OperationRecord | None:
            changed = db.execute(
                "UPDATE operations SET lease_expires = ? "
                "WHERE id = ? AND worker = ? AND state = 'RUNNING'",
                (now + lease_seconds, id, worker),
            ).rowcount
            return sqlite_rows.get_any(db, id) if changed else None

        return await self._run(work)

    async def finish(
        self,
        id: str,
        worker: str,
        state: OperationState,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
    ) -> bool:
        if state not in DONE_STATES:
            raise ValueError(f"finish needs a final state, not {state}")
        now = self._clock()

        def work(db: sqlite3.Connection) -> bool:
            changed: int = db.execute(
                "UPDATE operations SET state = ?, result = ?, error = ?, end_time = ?, "
                "worker = '', lease_expires = NULL "
                "WHERE id = ? AND worker = ? AND state = 'RUNNING'",
                (state.value, result, error, now, id, worker),
            ).rowcount
            return changed > 0

        finished = await self._run(work)
        if finished:
            self._notify()
        return finished

    async def release(self, id: str, worker: str) -> OperationState | None:
        now = self._clock()

        def work(db: sqlite3.Connection) -> OperationState | None:
            row = db.execute(
                "SELECT cancel_requested FROM operations "
                "WHERE id = ? AND worker = ? AND state = 'RUNNING'",
                (id, worker),
            ).fetchone()
            if row is None:
                return None
            if row[0]:  # asked to cancel while it ran: it ends now, never to run again
                db.execute(
                    "UPDATE operations SET state = 'CANCELLED', end_time = ?, worker = '', "
                    "lease_expires = NULL WHERE id = ?",
                    (now, id),
                )
                return OperationState.CANCELLED
            db.execute(
                "UPDATE operations SET state = 'QUEUED', attempts = max(attempts - 1, 0), "
                "worker = '', lease_expires = NULL, start_time = NULL WHERE id = ?",
                (id,),
            )
            return OperationState.QUEUED

        state = await self._run(work)
        if state is OperationState.CANCELLED:
            self._notify()
        return state

    async def cancel(self, tenant: str, id: str) -> OperationRecord:
        now = self._clock()

        def work(db: sqlite3.Connection) -> OperationRecord:
            record = sqlite_rows.get(db, tenant, id)
            if record.state is OperationState.QUEUED:
                db.execute(
                    "UPDATE operations SET state = 'CANCELLED', end_time = ? WHERE id = ?",
                    (now, id),
                )
            elif record.state is OperationState.RUNNING:
                db.execute("UPDATE operations SET cancel_requested = 1 WHERE id = ?", (id,))
            return sqlite_rows.get(db, tenant, id)

        record = await self._run(work)
        self._notify()
        return record

    async def delete(self, tenant: str, id: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            deleted = db.execute(
                "DELETE FROM operations WHERE tenant = ? AND id = ?", (tenant, id)
            ).rowcount
            if not deleted:
                raise operation_not_found(id)

        await self._run(work)
        self._notify()

    async def wait(self, tenant: str, id: str, timeout: float) -> OperationRecord:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(timeout, 0.0)
        while True:
            changed = self._changed
            if changed is None:
                changed = self._changed = asyncio.Event()
            record = await self.get(tenant, id)
            left = deadline - loop.time()
            if record.done or left <= 0:
                return record
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(left, self._poll)):
                    await changed.wait()

    async def expire(self, older_than: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            deleted: int = db.execute(
                "DELETE FROM operations WHERE state IN ('SUCCEEDED', 'FAILED', 'CANCELLED') "
                "AND end_time < ?",
                (older_than,),
            ).rowcount
            return deleted

        return await self._run(work)

    async def stats(self) -> QueueStats:
        now = self._clock()

        def work(db: sqlite3.Connection) -> QueueStats:
            counts = dict(
                db.execute("SELECT state, count(*) FROM operations GROUP BY state").fetchall()
            )
            (oldest,) = db.execute(
                "SELECT min(create_time) FROM operations WHERE state = 'QUEUED'"
            ).fetchone()
            by_state = {state: int(counts.get(state.value, 0)) for state in OperationState}
            return QueueStats(
                depth=by_state[OperationState.QUEUED],
                oldest_queued_age=max(now - oldest, 0.0) if oldest is not None else 0.0,
                running=by_state[OperationState.RUNNING],
                lease_expiries=self._lease_expiries,
                by_state=by_state,
            )

        return await self._run(work)

    async def ping(self) -> None:
        await self._run(lambda db: db.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True

        def shut() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)
