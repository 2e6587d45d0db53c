"""Session events fanned out to watchers (WatchSessions), each with its filter.

Publishing never blocks: a watcher that falls more than its queue behind loses
its oldest events and is told so by a gap in nothing but time (usage samples
come again; life-cycle events are few), which keeps a slow client from holding
the server's memory.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from codebeaker.server.sessions.record import SessionRecord, State

QUEUE_SIZE = 1000


class EventType(enum.Enum):
    CREATED = "created"
    STATE_CHANGED = "state_changed"
    USAGE = "usage"
    DELETED = "deleted"
    LOST = "lost"


@dataclass(frozen=True)
class SessionEvent:
    type: EventType
    record: SessionRecord  # a snapshot
    previous_state: State | None = None
    reason: str = ""
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class WatchFilter:
    session_id: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    tenant: str = ""

    def matches(self, record: SessionRecord) -> bool:
        if record.tenant != self.tenant:
            return False
        if self.session_id and record.id != self.session_id:
            return False
        return all(record.labels.get(k) == v for k, v in self.labels.items())


class Hub:
    def __init__(self) -> None:
        self._watchers: dict[asyncio.Queue[SessionEvent], WatchFilter] = {}

    @property
    def watchers(self) -> int:
        return len(self._watchers)

    def publish(self, event: SessionEvent) -> None:
        for queue, wanted in self._watchers.items():
            if not wanted.matches(event.record):
                continue
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

    async def watch(self, wanted: WatchFilter) -> AsyncIterator[SessionEvent]:
        queue: asyncio.Queue[SessionEvent] = asyncio.Queue(QUEUE_SIZE)
        self._watchers[queue] = wanted
        try:
            while True:
                yield await queue.get()
        finally:
            del self._watchers[queue]
