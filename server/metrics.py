"""Prometheus metrics: the standard gRPC server families and CodeBeaker's own.

One `Metrics` per Application, on its own registry (so two servers in one
process never share counters), served over HTTP at `--metrics-address`.
Counters and histograms are fed as things happen: RPCs by the telemetry
interceptor, executions by the execution report, phase durations by
`codebeaker.runtimes.telemetry` (this class is a phase observer). Gauges of
state (in-flight executions, waiting callers, warm pools) are read when
Prometheus scrapes, by a collector, so they can never drift.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from codebeaker.runtimes.errors import CapacityExhausted
from codebeaker.runtimes.model import LimitKind, Outcome, Verdict
from codebeaker.runtimes.pool import PoolStats
from codebeaker.runtimes.telemetry import PhaseRecord
from codebeaker.server.admission import Admission

RPC_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
# Phases run from microseconds (a pool hit) to minutes (a long program).
PHASE_BUCKETS = (0.0001, 0.0005, *RPC_BUCKETS)
_RPC = ("grpc_type", "grpc_service", "grpc_method")
# Time in the queue: from a submit to a worker's claim (idle: milliseconds; a backlog: hours).
QUEUE_WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 14400)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.rpc_started = Counter(
            "grpc_server_started_total", "RPCs started on the server.", _RPC, registry=r
        )
        self.rpc_handled = Counter(
            "grpc_server_handled_total",
            "RPCs completed on the server, by status code.",
            (*_RPC, "grpc_code"),
            registry=r,
        )
        self.rpc_seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status, in seconds.",
            _RPC,
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.executions = Counter(
            "codebeaker_executions_total",
            "Executions that reached a verdict, by language and status.",
            ("language", "status"),
            registry=r,
        )
        self.execution_seconds = Histogram(
            "codebeaker_execution_duration_seconds",
            "Server time of an execution, from admission to verdict, in seconds.",
            ("language",),
            buckets=RPC_BUCKETS,
            registry=r,
        )
        self.phase_seconds = Histogram(
            "codebeaker_phase_duration_seconds",
            "Duration of each phase of an execution or a sandbox's life, in seconds.",
            ("phase",),
            buckets=PHASE_BUCKETS,
            registry=r,
        )
        self.admission_waits = Counter(
            "codebeaker_admission_waits_total",
            "Executions that found every slot busy and had to wait for one.",
            registry=r,
        )
        self.admission_rejections = Counter(
            "codebeaker_admission_rejections_total",
            "Executions refused (RESOURCE_EXHAUSTED) after waiting for a slot in vain.",
            registry=r,
        )
        self.create_failures = Counter(
            "codebeaker_container_create_failures_total",
            "Sandbox containers that could not be created and started, by language.",
            ("language",),
            registry=r,
        )
        self.timeouts = Counter(
            "codebeaker_timeouts_total",
            "Executions stopped by a time limit, by language and limit (wall_time, cpu_time).",
            ("language", "limit"),
            registry=r,
        )
        self.oom_kills = Counter(
            "codebeaker_oom_kills_total",
            "Executions whose sandbox the kernel's OOM killer hit, by language.",
            ("language",),
            registry=r,
        )
        self.truncations = Counter(
            "codebeaker_output_truncations_total",
            "Output streams cut at the output cap, by language and stream.",
            ("language", "stream"),
            registry=r,
        )
        self.tenant_requests = Counter(
            "codebeaker_tenant_requests_total",
            "Calls of CodeBeaker's services by tenant (empty: unauthenticated) and status code.",
            ("tenant", "code"),
            registry=r,
        )
        self.tenant_quota_rejections = Counter(
            "codebeaker_tenant_quota_rejections_total",
            "Calls refused (RESOURCE_EXHAUSTED) by a tenant's quota, by tenant and quota.",
            ("tenant", "quota"),
            registry=r,
        )
        self._operations(r)
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=r)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def _operations(self, r: CollectorRegistry) -> None:
        """The queue's families: what an autoscaler reads (depth, oldest age, wait) and what
        says work was lost and retried (lease expiries, retries)."""
        prefix = "codebeaker_operations_"
        self.operations_submitted = Counter(
            prefix + "submitted_total", "Operations queued by SubmitExecution.", registry=r
        )
        self.operations_started = Counter(
            prefix + "started_total",
            "Claims of a queued operation by this server's workers.",
            registry=r,
        )
        self.operations_finished = Counter(
            prefix + "finished_total",
            "Operations this server ended, by final state (SUCCEEDED, FAILED, CANCELLED).",
            ("state",),
            registry=r,
        )
        self.operations_queue_wait = Histogram(
            prefix + "queue_wait_seconds",
            "Seconds from an operation's submit to a worker's claim.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.operations_lease_expiries = Counter(
            prefix + "lease_expiries_total",
            "Claims whose lease ran out (their worker died or stopped renewing).",
            registry=r,
        )
        self.operations_retries = Counter(
            prefix + "retries_total",
            "Claims of an operation that had been claimed before.",
            registry=r,
        )
        self.operations_handed_back = Counter(
            prefix + "handed_back_total",
            "Claimed operations handed back unrun (no execution slot, or the server stopping).",
            registry=r,
        )
        self.operations_queued = Gauge(
            prefix + "queued", "Operations waiting in the queue (the whole store's).", registry=r
        )
        self.operations_oldest_queued = Gauge(
            prefix + "oldest_queued_age_seconds",
            "Age of the oldest waiting operation; 0 when none waits.",
            registry=r,
        )
        self.operations_running = Gauge(
            prefix + "running", "Operations running now (the whole store's).", registry=r
        )
        self.operations_workers = Gauge(
            prefix + "workers", "This server's queue workers (--queue-workers).", registry=r
        )
        self.operations_store_up = Gauge(
            prefix + "store_up", "1 while the operation store answers, else 0.", registry=r
        )

    # -- fed by the interceptor, the execution report and the sandbox's phases --

    def rpc_start(self, kind: str, service: str, method: str) -> None:
        self.rpc_started.labels(kind, service, method).inc()

    def rpc_end(self, kind: str, service: str, method: str, code: str, seconds: float) -> None:
        self.rpc_handled.labels(kind, service, method, code).inc()
        self.rpc_seconds.labels(kind, service, method).observe(seconds)

    def execution_finished(self, language: str, outcome: Outcome, seconds: float) -> None:
        self.executions.labels(language, outcome.verdict.value).inc()
        self.execution_seconds.labels(language).observe(seconds)
        if outcome.verdict is Verdict.TIME_LIMIT_EXCEEDED:
            kind = outcome.limit_exceeded or LimitKind.WALL_TIME
            self.timeouts.labels(language, kind.value).inc()
        if outcome.verdict is Verdict.MEMORY_LIMIT_EXCEEDED:
            self.oom_kills.labels(language).inc()
        if outcome.stdout_truncated:
            self.truncations.labels(language, "stdout").inc()
        if outcome.stderr_truncated:
            self.truncations.labels(language, "stderr").inc()

    def tenant_request(self, tenant: str, code: str) -> None:
        self.tenant_requests.labels(tenant, code).inc()

    def quota_rejected(self, tenant: str, quota: str) -> None:
        self.tenant_quota_rejections.labels(tenant, quota).inc()

    def phase_ended(self, record: PhaseRecord) -> None:
        self.phase_seconds.labels(record.name).observe(record.seconds)
        if record.name == "admission":
            if record.attributes.get("waited"):
                self.admission_waits.inc()
            if isinstance(record.error, CapacityExhausted):
                self.admission_rejections.inc()
        elif record.name == "launch" and isinstance(record.error, Exception):
            self.create_failures.labels(str(record.attributes.get("language", ""))).inc()

    def watch(self, admission: Admission, pools: Callable[[], Mapping[str, PoolStats]]) -> None:
        """Read admission and warm-pool state at every scrape."""
        self.registry.register(_StateCollector(admission, pools))

    # -- the HTTP endpoint --

    def serve(self, host: str, port: int) -> int:
        """Serve /metrics in a background thread; returns the bound port (0 picks one)."""
        self._server, self._thread = start_http_server(port, host, registry=self.registry)
        return int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None


class _StateCollector(Collector):
    def __init__(self, admission: Admission, pools: Callable[[], Mapping[str, PoolStats]]) -> None:
        self._admission = admission
        self._pools = pools

    def describe(self) -> Iterator[Metric]:
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "codebeaker_executions_in_flight",
            "Executions holding a slot now.",
            value=self._admission.in_flight,
        )
        yield GaugeMetricFamily(
            "codebeaker_admission_waiting",
            "Executions waiting for a slot now.",
            value=self._admission.waiting,
        )
        stats = dict(self._pools())
        gauges = {
            "size": ("codebeaker_pool_size", "Started containers a pool keeps ready."),
            "ready": ("codebeaker_pool_available", "Started containers waiting in a pool now."),
            "launching": ("codebeaker_pool_launching", "Containers a pool is launching now."),
        }
        for attribute, (name, help_text) in gauges.items():
            gauge = GaugeMetricFamily(name, help_text, labels=["language"])
            for language, pool in stats.items():
                gauge.add_metric([language], getattr(pool, attribute))
            yield gauge
        counters = {
            "hits": ("codebeaker_pool_hits", "Requests served a started container at once."),
            "misses": ("codebeaker_pool_misses", "Requests that found their pool empty."),
        }
        for attribute, (name, help_text) in counters.items():
            counter = CounterMetricFamily(name, help_text, labels=["language"])
            for language, pool in stats.items():
                counter.add_metric([language], getattr(pool, attribute))
            yield counter
