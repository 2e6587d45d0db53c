"""The sandbox interface the server programs against.

A Sandbox turns a Job into a stream of events: Started, Output..., Finished.
Whatever happens (the program finishes, breaks a limit, or the caller goes
away and the iterator is closed), the host behind it is used once and
removed. The server also asks it what it can do (`memory_resizable`) and
which of its languages are ready (`readiness`, one reason per language, so
one missing runtime takes only its language out of service), rather than
knowing which backend is underneath.
Implementations: `SupervisedSandbox` over a backend (`runtimes/backend.py`),
and fakes in the unit tests. A session host (a sandbox that keeps its state
across calls) will be an interface of its own beside this one.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from typing import Protocol

from codebeaker.runtimes.model import Event, Job
from codebeaker.runtimes.pool import PoolStats


class Sandbox(Protocol):
    def execute(self, job: Job) -> AsyncGenerator[Event, None]:
        """Run `job`; the last event is always Finished unless an error is raised.

        Callers must close the iterator (e.g. `contextlib.aclosing`) when they
        stop early, so the sandbox is torn down at once.
        """
        ...

    def memory_resizable(self, language: str) -> bool:
        """Whether a started sandbox of `language` can change its memory limit
        (a compile with a memory limit of its own needs that)."""
        ...

    async def prepare(self) -> None:
        """Start-up work: remove leftovers of an earlier server instance, start pools."""
        ...

    async def readiness(self) -> Mapping[str, str | None]:
        """Runtime key (`LanguageSpec.key`) -> None when its executions can run, else
        why not (health checks)."""
        ...

    def pool_stats(self) -> Mapping[str, PoolStats]:
        """Warm pool counters per language, read when metrics are scraped (may be empty)."""
        ...

    async def versions(self) -> Mapping[str, str]:
        """Runtime key -> version, as recorded when its runtime was built."""
        ...

    async def packages(self) -> Mapping[str, Mapping[str, str]]:
        """Runtime key -> the packages its runtime carries (name -> version), as
        recorded when the runtime was built."""
        ...

    async def close(self) -> None:
        """Finish pending teardowns; after this no sandbox of ours is left."""
        ...


def unready_reason(readiness: Mapping[str, str | None]) -> str | None:
    """The whole sandbox's reason: None when every language is ready; one shared
    reason (an engine that does not answer) once; else each language's own."""
    unready = {language: reason for language, reason in readiness.items() if reason is not None}
    if not unready:
        return None
    reasons = set(unready.values())
    if len(reasons) == 1 and len(unready) == len(readiness):
        return reasons.pop()
    return "; ".join(f"{language}: {unready[language]}" for language in sorted(unready))
