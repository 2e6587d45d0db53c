"""What a backend provides for sessions: long-lived sandboxes that keep their state.

A session sandbox is started once and lives until the server removes it; its
agent (PROTOCOL.md § Session mode) is reached through a `Host` byte channel,
which a restarted server can open again (`attach`). The backend also freezes
and thaws a sandbox, reads its usage from outside it, lists the session
sandboxes it has (so the server can compare them with its registry), and
reports what happens to them as it happens (`events`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from codebeaker.runtimes.backend import Host
from codebeaker.runtimes.catalog import LanguageSpec


@dataclass(frozen=True)
class SessionLimits:
    """Resolved limits of a whole session's sandbox."""

    memory_bytes: int
    max_processes: int
    disk_bytes: int  # its working directory's tmpfs
    cpus: float


@dataclass(frozen=True)
class SandboxUsage:
    """A session sandbox's usage as its cgroup counts it (None: not readable here)."""

    cpu_time: float | None  # seconds since it started
    memory_bytes: int | None
    peak_memory_bytes: int | None


@dataclass(frozen=True)
class SessionSandbox:
    """A started session sandbox: its backend id and its agent's byte channel."""

    session_id: str
    sandbox_id: str
    channel: Host


@dataclass(frozen=True)
class SandboxListing:
    """One sandbox of ours as the backend lists it."""

    sandbox_id: str
    session_id: str  # "" for a sandbox that is not a session's (a host, a pool's)
    running: bool
    paused: bool
    age: float  # seconds since it was created


@dataclass(frozen=True)
class SandboxEvent:
    """Something the engine did to one of our sandboxes (die, destroy, oom, pause, ...)."""

    sandbox_id: str
    session_id: str
    action: str


class SessionBackend(Protocol):
    async def launch_session(
        self, spec: LanguageSpec, limits: SessionLimits, session_id: str
    ) -> SessionSandbox:
        """Create and start a session sandbox labelled with `session_id`."""
        ...

    async def attach(self, session_id: str, sandbox_id: str) -> SessionSandbox:
        """Open the agent's channel of a running sandbox again (after a restart)."""
        ...

    async def resize(self, sandbox: SessionSandbox, limits: SessionLimits) -> None:
        """Change a started sandbox's memory, process and CPU limits (not its disk)."""
        ...

    async def pause(self, sandbox_id: str) -> None: ...

    async def resume(self, sandbox_id: str) -> None: ...

    async def remove(self, sandbox_id: str) -> None:
        """Kill and remove; a sandbox already gone is fine."""
        ...

    def usage(self, sandbox_id: str) -> SandboxUsage:
        """Read from outside the sandbox, without an engine call."""
        ...

    async def listing(self) -> list[SandboxListing]:
        """Every sandbox of ours the engine has, sessions' and others'."""
        ...

    def events(self) -> AsyncIterator[SandboxEvent]:
        """What happens to our sandboxes, as it happens; reconnects by itself when the
        engine goes and comes back (it yields an event with action "reconnected" then)."""
        ...
