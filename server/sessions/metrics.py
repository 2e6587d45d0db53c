"""Prometheus families of sessions, on the server's registry.

`codebeaker_sessions{state}` is read at scrape time from the manager's records
(so it cannot drift); Exec counts and durations are fed as each Exec ends, usage
histograms at each usage sample.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from codebeaker.server.metrics import RPC_BUCKETS
from codebeaker.server.sessions.execs import ExecRecord
from codebeaker.server.sessions.manager import Usage
from codebeaker.server.sessions.record import SessionRecord, State

MIB = 1 << 20
BYTE_BUCKETS = tuple(float(n * MIB) for n in (1, 4, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096))
EXEC_BUCKETS = (*RPC_BUCKETS, 300.0, 900.0, 3600.0)


class _States(Collector):
    def __init__(self, records: Callable[[], Iterable[SessionRecord]]) -> None:
        self._records = records

    def collect(self) -> Iterator[Metric]:
        counts = Tally(record.state for record in self._records())
        family = GaugeMetricFamily(
            "codebeaker_sessions", "Sessions this server knows, by state.", labels=("state",)
        )
        for state in State:
            family.add_metric((state.value,), counts.get(state, 0))
        yield family


class SessionMetrics:
    def __init__(
        self, registry: CollectorRegistry, records: Callable[[], Iterable[SessionRecord]]
    ) -> None:
        r = registry
        r.register(_States(records))
        self.execs = Counter(
            "codebeaker_session_execs_total",
            "Execs ended in sessions, by language and verdict (lost: not followed to the end).",
            ("language", "status"),
            registry=r,
        )
        self.exec_seconds = Histogram(
            "codebeaker_session_exec_duration_seconds",
            "Wall time of an Exec in a session, from its start to its result, in seconds.",
            ("language",),
            buckets=EXEC_BUCKETS,
            registry=r,
        )
        self.memory = Histogram(
            "codebeaker_session_memory_bytes",
            "Memory in use by a session's sandbox at each usage sample.",
            buckets=BYTE_BUCKETS,
            registry=r,
        )
        self.disk = Histogram(
            "codebeaker_session_disk_bytes",
            "Bytes in a session's working directory and /tmp at each usage sample.",
            buckets=BYTE_BUCKETS,
            registry=r,
        )
        self.cpu = Counter(
            "codebeaker_session_cpu_seconds_total",
            "CPU time used by sessions' sandboxes, as sampled.",
            registry=r,
        )
        self._cpu_seen: dict[str, float] = {}

    def exec_done(self, session: SessionRecord, record: ExecRecord) -> None:
        status = record.outcome.verdict.value if record.outcome else "lost"
        self.execs.labels(session.language, status).inc()
        if record.end_time:
            self.exec_seconds.labels(session.language).observe(record.end_time - record.start_time)

    def usage(self, session: SessionRecord, usage: Usage) -> None:
        self.memory.observe(usage.memory_bytes)
        self.disk.observe(usage.disk_bytes)
        seen = self._cpu_seen.get(session.id, 0.0)
        if usage.cpu_time > seen:
            self.cpu.inc(usage.cpu_time - seen)
            self._cpu_seen[session.id] = usage.cpu_time
