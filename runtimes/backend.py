"""What a backend provides: started hosts whose supervisor waits for a request.

Everything about running a job that does not depend on how a sandbox is made
(warm pools, delivering the request, the conversation with cb-supervisor, the
server's wall clock, verdicts, judging) lives in the neutral layer
(`codebeaker.runtimes.supervised`). A backend knows only how to start a
hardened host for a language under given limits, how to move bytes to and
from its supervisor, how to change its memory limit, how it ended, and how to
remove it. Docker is one (`runtimes/docker/`); a second backend is one more
folder implementing `Backend` and `Host`, and the one server module that
picks a backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.model import Limits


@dataclass(frozen=True)
class HostEnd:
    """How a host ended, as its backend recorded it (not as the program says)."""

    exit_code: int
    oom_killed: bool


class Host(Protocol):
    """A started sandbox whose supervisor reads a request on its stdin."""

    def is_alive(self) -> bool:
        """False once the supervisor has gone (a pool never hands such a host out)."""
        ...

    def write(self, data: bytes) -> None:
        """Queue `data` for the supervisor's stdin; it is sent as the supervisor reads."""
        ...

    async def read(self) -> bytes:
        """The next bytes the supervisor wrote (its framed stdout); b"" once it is gone."""
        ...

    def reset_peak_memory(self) -> None:
        """Before a reusable host's next run: make the host's peak memory its current
        use, so that the run reports its own (best effort)."""
        ...

    async def set_memory(self, memory_bytes: int) -> None:
        """Change the whole host's memory limit (swap stays off)."""
        ...

    async def ended(self, within: float) -> HostEnd:
        """How the host ended, waiting up to `within` seconds for it to stop."""
        ...


H = TypeVar("H", bound=Host)


class Backend(Protocol[H]):
    """Starts and removes hosts; answers what it can do and whether it is ready."""

    @property
    def cpu_quota(self) -> float:
        """CPUs one host may use (bounds the CPU time a supervisor reads from /proc)."""
        ...

    def memory_resizable(self, language: str) -> bool:
        """Whether a started host of `language` can change its memory limit."""
        ...

    async def prepare(self) -> None:
        """Start-up work: remove what an earlier server instance left behind."""
        ...

    async def launch(
        self, spec: LanguageSpec, limits: Limits, execution_id: str, *, reusable: bool = False
    ) -> H:
        """Create and start a host; its supervisor then waits for one request, or,
        `reusable`, serves one request after another, each in a fresh nested
        sandbox, saying READY before each (PROTOCOL.md § Host mode).

        `execution_id` is empty for a host launched ahead of its request (a pool's).
        """
        ...

    def discard(self, host: H) -> None:
        """Kill and remove `host` in the background (`close` waits for it)."""
        ...

    async def readiness(self) -> Mapping[str, str | None]:
        """Runtime key (`LanguageSpec.key`: the language id, or id-version for a
        version besides the default) -> None when its hosts can be launched, else why
        not (health checks); every runtime the backend was made for is a key."""
        ...

    async def versions(self) -> Mapping[str, str]:
        """Runtime key -> version of its toolchain, as recorded when its image was built."""
        ...

    async def packages(self) -> Mapping[str, Mapping[str, str]]:
        """Runtime key -> the packages baked into its image (name -> version), as
        recorded when the image was built; empty for a language without any."""
        ...

    async def close(self) -> None:
        """Finish pending removals and sweep every host of ours that is left."""
        ...
