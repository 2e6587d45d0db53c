"""The gRPC application: wiring, health, reflection, and a graceful life cycle.

Start-up removes leftovers of an earlier instance, then serves. Health is
SERVING only while the sandbox says it is ready (re-checked in the
background). SIGTERM/SIGINT: NOT_SERVING, refuse new calls, give in-flight
executions `shutdown_grace` seconds, cancel the rest (their
sandboxes are killed and removed), wait for every teardown, exit 0.
Telemetry is wired here: the RPC telemetry interceptor (outside the error
interceptor), the metrics registry and its optional HTTP endpoint, the phase
observer, and the per-execution report.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from dataclasses import replace

from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from codebeaker.runtimes import telemetry
from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.server.admission import Admission
from codebeaker.server.config import ServerConfig
from codebeaker.server.errors import ErrorInterceptor
from codebeaker.server.executions import Executions
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.options import split_host_port
from codebeaker.server.reporting import ExecutionReporter
from codebeaker.server.requests import RequestRules
from codebeaker.server.rpc_telemetry import TelemetryInterceptor
from codebeaker.server.servicer import ExecutionServicer
from codebeaker.v1 import execution_pb2, execution_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name
HEALTH_INTERVAL = 5.0
MESSAGE_LIMIT = 64 * 1024 * 1024
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Application:
    """One server instance; `start` binds (port 0 allowed), `stop` drains."""

    def __init__(self, config: ServerConfig, sandbox: Sandbox, catalog: Catalog) -> None:
        self.config = config
        self.sandbox = sandbox
        limits = config.limits
        self._rules = RequestRules(
            catalog=catalog,
            policy=limits.limit_policy(),
            max_source=limits.max_source,
            max_stdin=limits.max_stdin,
            max_files=limits.max_files,
            compile_policy=limits.compile_policy(),
            max_test_cases=limits.max_test_cases,
            output_file_caps=(limits.output_file_cap, limits.output_files_cap),
            fixed_memory_languages=frozenset(
                spec.id for spec in catalog.specs() if not sandbox.memory_resizable(spec.id)
            ),
        )
        service = config.service
        self.admission = Admission(service.max_concurrency, service.admission_wait)
        self.metrics = Metrics()
        self.metrics.watch(self.admission, sandbox.pool_stats)
        self.health = health.aio.HealthServicer()
        self.server = aio.server(
            # Telemetry outside: it sees the status the error interceptor decided.
            interceptors=[TelemetryInterceptor(self.metrics), ErrorInterceptor()],
            options=[
                ("grpc.max_receive_message_length", MESSAGE_LIMIT),
                ("grpc.max_send_message_length", MESSAGE_LIMIT),
                ("grpc.so_reuseport", 0),
            ],
        )
        executions = Executions(sandbox, self.admission, ExecutionReporter(self.metrics).report)
        servicer = ExecutionServicer(executions, lambda: self._rules)
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server
        )
        self.port = 0
        self.metrics_port: int | None = None
        self._watch: asyncio.Task[None] | None = None
        self._draining = False

    async def start(self) -> int:
        await self._set_health(_NOT_SERVING)
        self.port = self.server.add_insecure_port(self.config.service.address)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.service.address}")
        if self.config.service.metrics_address:
            address = split_host_port(self.config.service.metrics_address)
            self.metrics_port = self.metrics.serve(*address)
        telemetry.add_observer(self.metrics)
        with contextlib.suppress(Exception):
            await self.sandbox.prepare()
        await self.server.start()
        self._watch = asyncio.create_task(self._watch_health())
        event(
            log,
            logging.INFO,
            "server.listening",
            f"listening on {self.config.service.address} (port {self.port})",
            address=self.config.service.address,
            port=self.port,
            metrics_port=self.metrics_port or 0,
        )
        return self.port

    async def _watch_health(self) -> None:
        versions_known = False
        last: str | None = ""  # neither None (serving) nor a reason: the first check is news
        while not self._draining:
            reason = await self.sandbox.unready_reason()
            if reason is None and not versions_known:
                await self._learn_versions()
                versions_known = True
            if not self._draining:
                await self._set_health(_SERVING if reason is None else _NOT_SERVING)
            if reason != last:
                if reason is None:
                    event(log, logging.INFO, "server.serving", "serving")
                else:
                    message = f"not serving: {reason}"
                    event(log, logging.WARNING, "server.not_serving", message, reason=reason)
                last = reason
            await asyncio.sleep(HEALTH_INTERVAL if reason is None else 1.0)

    async def _learn_versions(self) -> None:
        versions = await self.sandbox.versions()
        self._rules = replace(self._rules, catalog=self._rules.catalog.with_versions(versions))

    async def _set_health(self, status: int) -> None:
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)

    async def stop(self) -> None:
        self._draining = True
        await self._set_health(_NOT_SERVING)
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        grace = self.config.service.shutdown_grace
        message = f"draining: in-flight executions get {grace:.1f}s"
        event(log, logging.INFO, "server.draining", message, grace_seconds=grace)
        await self.server.stop(grace)
        await self.sandbox.close()
        telemetry.remove_observer(self.metrics)
        self.metrics.close()
        event(log, logging.INFO, "server.stopped", "stopped")


async def serve(config: ServerConfig, sandbox: Sandbox, catalog: Catalog) -> None:
    """Run until SIGTERM or SIGINT, then drain and return."""
    app = Application(config, sandbox, catalog)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await app.start()
    await stop.wait()
    await app.stop()
