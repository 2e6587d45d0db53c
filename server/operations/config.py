"""The `queue` and `state` config sections: where the server keeps its state, how it runs
its queue of operations.

`state_dir` is the server's own directory for what outlives a process (the embedded
operation store; the session registry will live there too). Empty means
`$XDG_STATE_HOME/codebeaker`, else `~/.local/state/codebeaker`; it is created on first use
with mode 0700, since specs and results are kept there at rest.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from codebeaker.server.options import setting

SQLITE = "sqlite"
REDIS_SCHEME = "redis://"


@dataclass(frozen=True)
class StateConfig:
    state_dir: str = setting(
        "",
        "directory for the server's durable state (the embedded queue), created 0700; "
        "empty: $XDG_STATE_HOME/codebeaker or ~/.local/state/codebeaker",
    )

    def directory(self) -> Path:
        if self.state_dir:
            return Path(self.state_dir).expanduser()
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "codebeaker"


@dataclass(frozen=True)
class QueueConfig:
    queue: str = setting(
        SQLITE, "operation store: sqlite (embedded, under --state-dir) or redis://HOST:PORT/DB"
    )
    queue_workers: int = setting(
        4, "queued executions run at once by this server (change at run time: README)"
    )
    queue_share: float = setting(
        0.5,
        "the part of --max-concurrency the queue may hold: a fraction (0-1], or a number of "
        "slots above 1; direct calls keep the rest",
    )
    queue_lease: float = setting(
        30.0, "seconds a worker's claim on a job lasts unless renewed (renewed while it runs)"
    )
    queue_max_attempts: int = setting(
        3, "claims a job gets; one whose worker died that many times fails (ATTEMPTS_EXHAUSTED)"
    )
    result_ttl: float = setting(86400.0, "seconds a finished operation is kept, then deleted")
    max_queued: int = setting(
        10000, "operations waiting at most; more are RESOURCE_EXHAUSTED (QUEUE_FULL); 0: no limit"
    )

    def queue_slots(self, max_concurrency: int) -> int:
        """How many of the admission slots the queue's workers may hold at once."""
        if self.queue_share > 1:
            return min(int(self.queue_share), max_concurrency)
        return max(1, math.floor(self.queue_share * max_concurrency))

    def check(self) -> None:
        if self.queue != SQLITE and not self.queue.startswith(REDIS_SCHEME):
            raise ValueError(f"queue must be sqlite or redis://HOST:PORT/DB, not {self.queue!r}")
        if self.queue_workers < 0:
            raise ValueError("queue_workers must not be negative")
        if self.queue_share <= 0:
            raise ValueError("queue_share must be above 0")
        if self.queue_lease < 2:
            raise ValueError("queue_lease must be at least 2 seconds")
        if self.queue_max_attempts < 1:
            raise ValueError("queue_max_attempts must be at least 1")
        if self.result_ttl <= 0:
            raise ValueError("result_ttl must be above 0")
        if self.max_queued < 0:
            raise ValueError("max_queued must not be negative")
