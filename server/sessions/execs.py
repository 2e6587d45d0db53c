"""Each Exec's record: what ran, how it ended, and its retained output.

Events get sequence numbers 1, 2, 3 ... as they are published (ExecStarted
first, the result last). The record keeps the newest events up to a byte
budget (the oldest output goes first; the result always stays), so a caller
that reconnects, or another viewer, replays from a sequence number and then
follows live (`follow`). The pump that publishes never waits for followers.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from typing import Any

from codebeaker.runtimes.errors import CodeBeakerError, HostLost
from codebeaker.runtimes.model import LimitKind, Outcome, Output, Verdict

RETAINED_BYTES = 8 << 20  # per Exec, at most
EVENT_OVERHEAD = 64  # bytes an event counts for besides its data


class ExecState(enum.Enum):
    RUNNING = "running"
    DONE = "done"
    LOST = "lost"


@dataclass(frozen=True)
class ExecBegan:
    exec_id: str


@dataclass(frozen=True)
class Display:
    """Rich output of a code cell (its last value, a figure)."""

    mime_type: str
    data: bytes
    truncated: bool = False


@dataclass(frozen=True)
class ExecFailure:
    """The Exec could not be followed to its end: the error its caller gets."""

    error: CodeBeakerError


ExecPayload = ExecBegan | Output | Display | Outcome | ExecFailure


@dataclass(frozen=True)
class ExecEvent:
    sequence: int
    payload: ExecPayload


class ExecRecord:
    def __init__(
        self,
        exec_id: str,
        argv: tuple[str, ...],
        *,
        detached: bool,
        code: str = "",
        retained_bytes: int = RETAINED_BYTES,
    ) -> None:
        self.exec_id = exec_id
        self.argv = argv
        self.code = code
        self.detached = detached
        self.state = ExecState.RUNNING
        self.start_time = time.time()
        self.end_time = 0.0
        self.outcome: Outcome | None = None
        self.failure: CodeBeakerError | None = None
        self._events: deque[ExecEvent] = deque()
        self._bytes = 0
        self._budget = retained_bytes
        self.last_sequence = 0
        self._news = asyncio.Event()

    @property
    def done(self) -> bool:
        return self.state is not ExecState.RUNNING

    @property
    def first_retained(self) -> int:
        return self._events[0].sequence if self._events else self.last_sequence + 1

    def publish(self, payload: ExecPayload) -> ExecEvent:
        if self.done:
            raise RuntimeError(f"exec {self.exec_id} already ended")
        self.last_sequence += 1
        event = ExecEvent(self.last_sequence, payload)
        self._events.append(event)
        self._bytes += _size(payload)
        while self._bytes > self._budget and len(self._events) > 1:
            self._bytes -= _size(self._events.popleft().payload)
        if isinstance(payload, Outcome):
            self.state, self.outcome, self.end_time = ExecState.DONE, payload, time.time()
        elif isinstance(payload, ExecFailure):
            self.state, self.failure, self.end_time = ExecState.LOST, payload.error, time.time()
        self._news.set()
        self._news = asyncio.Event()
        return event

    async def follow(self, from_sequence: int = 1) -> AsyncIterator[ExecEvent]:
        """Retained events from `from_sequence` on, then new ones, until the last."""
        wanted = max(from_sequence, 1)
        while True:
            news = self._news
            first = self.first_retained
            wanted = max(wanted, first)
            while wanted <= self.last_sequence:
                event = self._events[wanted - first]
                wanted += 1
                yield event
                if self.first_retained != first:  # events were dropped meanwhile
                    break
            if self.done and wanted > self.last_sequence:
                return
            if self.first_retained == first:
                await news.wait()

    def to_json(self) -> dict[str, Any]:
        """The record without its output (what a restarted server can show)."""
        outcome = None
        if self.outcome is not None:
            outcome = asdict(self.outcome)
            outcome["verdict"] = self.outcome.verdict.value
            kind = self.outcome.limit_exceeded
            outcome["limit_exceeded"] = kind.value if kind else None
        return {
            "exec_id": self.exec_id,
            "argv": list(self.argv),
            "code": self.code,
            "detached": self.detached,
            "state": self.state.value,
            "start_time": self.start_time,
            "end_time": self.end_time,
            "last_sequence": self.last_sequence,
            "outcome": outcome,
            "failure": str(self.failure) if self.failure else "",
        }

    @classmethod
    def restored(cls, data: dict[str, Any]) -> ExecRecord:
        """A finished record as an earlier server kept it: its result can be replayed
        (at its own sequence number), its output cannot."""
        record = cls(
            str(data["exec_id"]),
            tuple(data["argv"]),
            detached=bool(data["detached"]),
            code=str(data.get("code", "")),
        )
        record.start_time, record.end_time = float(data["start_time"]), float(data["end_time"])
        record.last_sequence = int(data["last_sequence"])
        raw = data.get("outcome")
        if raw:
            values = dict(raw)
            values["verdict"] = Verdict(values["verdict"])
            kind = values.get("limit_exceeded")
            values["limit_exceeded"] = LimitKind(kind) if kind else None
            record.outcome = Outcome(**values)
            record.state = ExecState.DONE
            record._events.append(ExecEvent(record.last_sequence, record.outcome))
        else:
            record.state = ExecState.LOST
            record.failure = HostLost(str(data.get("failure") or "it was not followed to its end"))
            record._events.append(ExecEvent(record.last_sequence, ExecFailure(record.failure)))
        return record


def _size(payload: ExecPayload) -> int:
    return EVENT_OVERHEAD + (len(payload.data) if isinstance(payload, Output | Display) else 0)
