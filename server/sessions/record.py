"""What the server knows of one session: plain, JSON-serialisable values."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any

from codebeaker.runtimes.model import Limits
from codebeaker.runtimes.sessions.backend import SessionLimits


class State(enum.Enum):
    CREATING = "creating"
    READY = "ready"
    BUSY = "busy"
    PAUSED = "paused"
    TERMINATED = "terminated"
    FAILED = "failed"

    @property
    def live(self) -> bool:
        return self not in (State.TERMINATED, State.FAILED)


LIVE_STATES = frozenset(state for state in State if state.live)


@dataclass
class SessionRecord:
    id: str
    language: str
    version: str
    sandbox: SessionLimits
    exec_limits: Limits  # each Exec's defaults (memory and processes are the sandbox's)
    idle_timeout: float
    lifetime: float
    create_time: float
    labels: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    request_id: str = ""
    tenant: str = ""  # the caller's tenant ("" without tenants): only it sees the session
    sandbox_id: str = ""
    state: State = State.CREATING
    reason: str = ""
    update_time: float = 0.0
    last_activity_time: float = 0.0
    exec_count: int = 0
    # Request-time packages: the cache key of the set mounted, and each package asked
    # for with the version installed.
    package_set: str = ""
    packages: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"sessions/{self.id}"

    @property
    def expire_time(self) -> float:
        return self.create_time + self.lifetime

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SessionRecord:
        values = dict(data)
        values["sandbox"] = SessionLimits(**values["sandbox"])
        values["exec_limits"] = Limits(**values["exec_limits"])
        values["state"] = State(values["state"])
        return cls(**values)
