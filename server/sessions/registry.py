"""The session registry: every session's record in SQLite under --state-dir.

One row per session, the record as JSON beside the columns queries need. It is
what a restarted server finds its sessions in; the reconcile loop compares it
with the engine. Writes are small and synchronous (WAL, no fsync per commit
beyond SQLite's normal mode): a session's state changes a few times in its life.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from codebeaker.server.sessions.record import SessionRecord

FILE_NAME = "sessions.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    create_time REAL NOT NULL,
    request_id TEXT NOT NULL DEFAULT '',
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_time ON sessions (create_time, id);
CREATE TABLE IF NOT EXISTS execs (
    session_id TEXT NOT NULL,
    exec_id TEXT NOT NULL,
    end_time REAL NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (session_id, exec_id)
);
"""
EXECS_KEPT = 100  # finished Exec records kept per session


class Registry:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.path = directory / FILE_NAME
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def save(self, record: SessionRecord) -> None:
        self._db.execute(
            "INSERT INTO sessions (id, state, create_time, request_id, record) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "state = excluded.state, record = excluded.record",
            (
                record.id,
                record.state.value,
                record.create_time,
                record.request_id,
                json.dumps(record.to_json()),
            ),
        )

    def delete(self, session_id: str) -> None:
        self._db.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
        self._db.execute("DELETE FROM execs WHERE session_id = ?", (session_id,))

    def save_exec(self, session_id: str, record: dict[str, Any]) -> None:
        """Keep a finished Exec's record (without output); the oldest past EXECS_KEPT go."""
        self._db.execute(
            "INSERT OR REPLACE INTO execs (session_id, exec_id, end_time, record) "
            "VALUES (?, ?, ?, ?)",
            (session_id, record["exec_id"], record["end_time"], json.dumps(record)),
        )
        self._db.execute(
            "DELETE FROM execs WHERE session_id = ? AND exec_id NOT IN (SELECT exec_id FROM execs "
            "WHERE session_id = ? ORDER BY end_time DESC LIMIT ?)",
            (session_id, session_id, EXECS_KEPT),
        )

    def execs(self, session_id: str) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT record FROM execs WHERE session_id = ? ORDER BY end_time", (session_id,)
        )
        return [json.loads(text) for (text,) in rows.fetchall()]

    def all(self) -> Iterator[SessionRecord]:
        rows = self._db.execute("SELECT record FROM sessions ORDER BY create_time, id")
        for (text,) in rows.fetchall():
            yield SessionRecord.from_json(json.loads(text))

    def close(self) -> None:
        self._db.close()
