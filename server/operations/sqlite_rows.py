"""The embedded store's `operations` table: its schema, rows read as records, expired leases
reclaimed; its page tokens; its directory."""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.server.operations.store import (
    OperationRecord,
    OperationState,
    operation_not_found,
)

COLUMNS = (
    "id, tenant, request_id, state, spec, trace_context, create_time, start_time, end_time, "
    "attempts, result, error, cancel_requested, worker, lease_expires"
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    request_id TEXT NOT NULL,
    state TEXT NOT NULL,
    spec BLOB NOT NULL,
    trace_context TEXT NOT NULL,
    create_time REAL NOT NULL,
    start_time REAL,
    end_time REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result BLOB,
    error BLOB,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    worker TEXT NOT NULL DEFAULT '',
    lease_expires REAL
);
CREATE UNIQUE INDEX IF NOT EXISTS operations_request
    ON operations (tenant, request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS operations_state ON operations (state, seq);
CREATE INDEX IF NOT EXISTS operations_tenant ON operations (tenant, seq);
CREATE INDEX IF NOT EXISTS operations_tenant_state ON operations (tenant, state);
"""


def ensure_private_dir(path: Path) -> Path:
    """`path` (and parents) created if missing, the directory itself with mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def record(row: Sequence[Any]) -> OperationRecord:
    # sqlite3 rows are untyped: the schema above says what each column holds.
    (id, tenant, request_id, state, spec, trace, create, start, end) = row[:9]
    (attempts, result, error, cancel_requested, worker, lease) = row[9:]
    carrier = json.loads(str(trace))
    return OperationRecord(
        id=str(id),
        tenant=str(tenant),
        request_id=str(request_id),
        state=OperationState(str(state)),
        spec=bytes(spec),
        trace_context={str(k): str(v) for k, v in carrier.items()},
        create_time=float(create),
        start_time=None if start is None else float(start),
        end_time=None if end is None else float(end),
        attempts=int(attempts),
        result=None if result is None else bytes(result),
        error=None if error is None else bytes(error),
        cancel_requested=bool(cancel_requested),
        worker=str(worker),
        lease_expires=None if lease is None else float(lease),
    )


def token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"before:{seq}".encode()).decode().rstrip("=")


def parse_token(token: str) -> int:
    if not token:
        return 2**63 - 1
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind != "before" or not seq.isdigit():
            raise ValueError(text)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "page_token", "not a page token this server issued", reason=Reason.VALUE_INVALID
        ) from None


def reclaim_expired(db: sqlite3.Connection, now: float, max_attempts: int) -> int:
    """RUNNING records whose lease ran out: CANCELLED if asked, FAILED after max_attempts
    claims, else QUEUED again (keeping their attempts). How many there were."""
    expired = db.execute(
        "SELECT id, attempts, cancel_requested FROM operations "
        "WHERE state = 'RUNNING' AND lease_expires < ?",
        (now,),
    ).fetchall()
    for id, attempts, cancel_requested in expired:
        if cancel_requested:
            state = "CANCELLED"
        elif attempts >= max_attempts:
            state = "FAILED"
        else:
            state = "QUEUED"
        db.execute(
            "UPDATE operations SET state = ?, worker = '', lease_expires = NULL, "
            "end_time = CASE WHEN ? = 'QUEUED' THEN NULL ELSE ? END WHERE id = ?",
            (state, state, now, id),
        )
    return len(expired)


def get(db: sqlite3.Connection, tenant: str, id: str) -> OperationRecord:
    row = db.execute(
        f"SELECT {COLUMNS} FROM operations WHERE tenant = ? AND id = ?", (tenant, id)
    ).fetchone()
    if row is None:
        raise operation_not_found(id)
    return record(row)


def get_any(db: sqlite3.Connection, id: str) -> OperationRecord:
    row = db.execute(f"SELECT {COLUMNS} FROM operations WHERE id = ?", (id,)).fetchone()
    if row is None:
        raise operation_not_found(id)
    return record(row)


def set_up(db: sqlite3.Connection) -> None:
    """WAL mode and the schema. Turning a new database to WAL needs it alone and SQLite answers
    "locked" at once, not after the busy timeout, when another connection (a second store, a
    server starting beside one) is opening it too: try again for up to the busy timeout."""
    deadline = time.monotonic() + 5.0
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)  # on the store's own thread: a lock retry, never the event loop
    db.execute("PRAGMA synchronous=NORMAL")
    db.executescript(SCHEMA)
