"""The sandbox interface the server programs against.

A Sandbox turns a Job into a stream of events: Started, Output..., Finished.
Whatever happens (the program finishes, breaks a limit, or the caller goes
away and the iterator is closed), the container behind it is used once and
removed. Implementations: the Docker one (`codebeaker.runtimes.docker`) and
fakes in the unit tests.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Protocol

from codebeaker.runtimes.model import Event, Job

if TYPE_CHECKING:  # the Docker package is an implementation; only its counters' type is shared
    from codebeaker.runtimes.docker.pool import PoolStats


class Sandbox(Protocol):
    def execute(self, job: Job) -> AsyncGenerator[Event, None]:
        """Run `job`; the last event is always Finished unless an error is raised.

        Callers must close the iterator (e.g. `contextlib.aclosing`) when they
        stop early, so the sandbox is torn down at once.
        """
        ...

    async def prepare(self) -> None:
        """Start-up work: remove leftovers of an earlier server instance."""
        ...

    async def unready_reason(self) -> str | None:
        """None when executions can run; otherwise why not (for health checks)."""
        ...

    def pool_stats(self) -> Mapping[str, PoolStats]:
        """Warm pool counters per language, read when metrics are scraped (may be empty)."""
        ...

    async def versions(self) -> Mapping[str, str]:
        """Language id -> version, read from the runtime images."""
        ...

    async def close(self) -> None:
        """Finish pending teardowns; after this no container of ours is left."""
        ...
