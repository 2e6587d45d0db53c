"""The gRPC application: wiring, health, reflection, and a graceful life cycle.

Start-up removes leftovers of an earlier instance, then serves. Health has
three kinds of names: readiness ("" and the service's name), SERVING only
while every served language is ready (re-checked in the background); one
name per language (`<service>/<language id>`), so a router can send a
language only where it runs; and liveness (`codebeaker.liveness`), SERVING
until the server drains. SIGTERM/SIGINT: NOT_SERVING, keep taking calls for
`shutdown_delay` seconds (load balancers notice), then refuse new calls,
give in-flight executions `shutdown_grace` seconds, cancel the rest (their
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
from collections.abc import Mapping
from dataclasses import replace

from google.longrunning import (  # type: ignore[import-untyped, unused-ignore]
    operations_pb2_grpc,
)
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from codebeaker.runtimes import telemetry
from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.packages.cache import Installer
from codebeaker.runtimes.sandbox import Sandbox, unready_reason
from codebeaker.runtimes.sessions.backend import SessionBackend
from codebeaker.server import transport
from codebeaker.server.access import Access
from codebeaker.server.admission import Admission
from codebeaker.server.config import ServerConfig
from codebeaker.server.errors import ErrorInterceptor
from codebeaker.server.executions import Executions
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics
from codebeaker.server.operations.queue import Queue, open_store
from codebeaker.server.options import split_host_port
from codebeaker.server.reporting import ExecutionReporter
from codebeaker.server.requests import RequestRules
from codebeaker.server.rpc_telemetry import TelemetryInterceptor
from codebeaker.server.servicer import ExecutionServicer
from codebeaker.server.sessions.runtime import SessionRuntime
from codebeaker.v1 import execution_pb2, execution_pb2_grpc, session_pb2, session_pb2_grpc

log = logging.getLogger(__name__)
SERVICE_NAME = execution_pb2.DESCRIPTOR.services_by_name["ExecutionService"].full_name
SESSION_SERVICE_NAME = session_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name
OPERATIONS_SERVICE_NAME = "google.longrunning.Operations"
LIVENESS_NAME = "codebeaker.liveness"
UNREPORTED = "the sandbox reported nothing about this language"
HEALTH_INTERVAL = 5.0
MESSAGE_LIMIT = 64 * 1024 * 1024
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Application:
    """One server instance; `start` binds (port 0 allowed), `stop` drains."""

    def __init__(
        self,
        config: ServerConfig,
        sandbox: Sandbox,
        catalog: Catalog,
        session_backend: SessionBackend | None = None,
        installer: Installer | None = None,
    ) -> None:
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
            allowlist=config.packages.allowlist(catalog),
        )
        service = config.service
        self.admission = Admission(service.max_concurrency, service.admission_wait)
        self.metrics = Metrics()
        self.metrics.watch(self.admission, sandbox.pool_stats)
        self.access = Access(config.access, self.metrics)  # tenants, quotas, audit log
        self.health = health.aio.HealthServicer()
        self.server = aio.server(
            # Telemetry outside: it sees the status the error interceptor decided.
            # Audit outside the error interceptor (it records the status that one decided),
            # auth inside it (its refusals are domain errors, mapped like every other).
            interceptors=[
                TelemetryInterceptor(self.metrics),
                self.access.audit_interceptor,
                ErrorInterceptor(),
                self.access.auth_interceptor,
            ],
            options=[
                ("grpc.max_receive_message_length", MESSAGE_LIMIT),
                ("grpc.max_send_message_length", MESSAGE_LIMIT),
                ("grpc.so_reuseport", 0),
                *transport.server_options(config),
            ],
        )
        state_dir = config.state.directory()
        # Request-time packages need an installer (the real backend has one).
        self.packages = (
            config.packages.cache(installer, state_dir, self.metrics.registry)
            if installer is not None
            else None
        )
        executions = Executions(
            sandbox,
            self.admission,
            ExecutionReporter(self.metrics).report,
            self.access.tenancy,
            self.packages,
        )
        self.queue = Queue(
            config.queue,
            state_dir,
            open_store(config.queue, state_dir),
            executions=executions,
            rules=lambda: self._rules,
            tenancy=self.access.tenancy,
            admission=self.admission,
            metrics=self.metrics,
            on_health=self._poke_health,
        )
        servicer = ExecutionServicer(executions, lambda: self._rules, self.queue.service.submit)
        execution_pb2_grpc.add_ExecutionServiceServicer_to_server(servicer, self.server)
        operations_pb2_grpc.add_OperationsServicer_to_server(self.queue.service, self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        # Sessions need a backend that makes session sandboxes (the real one does; a
        # server built over a fake sandbox for unit tests serves without them).
        self.sessions: SessionRuntime | None = None
        if session_backend is not None:
            self.sessions = SessionRuntime(
                session_backend,
                config.sessions,
                state_dir=state_dir,
                catalog=lambda: self._rules.catalog,
                execution_policy=limits.limit_policy(),
                cpus=config.backend.sandbox_cpus,
                resizable=sandbox.memory_resizable,
                file_caps=(limits.output_file_cap, limits.output_files_cap),
                registry=self.metrics.registry,
                tenancy=self.access.tenancy,
                allowlist=self._rules.allowlist,
                packages=self.packages,
            )
            session_pb2_grpc.add_SessionServiceServicer_to_server(
                self.sessions.servicer, self.server
            )
        names = (
            SERVICE_NAME,
            *((SESSION_SERVICE_NAME,) if self.sessions else ()),
            OPERATIONS_SERVICE_NAME,
            health.SERVICE_NAME,
            reflection.SERVICE_NAME,
        )
        reflection.enable_server_reflection(names, self.server)
        self._poked = asyncio.Event()
        self.port = 0
        self.metrics_port: int | None = None
        self._watch: asyncio.Task[None] | None = None
        self._draining = False

    async def start(self) -> int:
        await self._set_health(_NOT_SERVING)
        credentials = transport.server_credentials(self.config.service)
        if credentials is None:
            self.port = self.server.add_insecure_port(self.config.service.address)
        else:
            self.port = self.server.add_secure_port(self.config.service.address, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {self.config.service.address}")
        if self.config.service.metrics_address:
            address = split_host_port(self.config.service.metrics_address)
            self.metrics_port = self.metrics.serve(*address)
        telemetry.add_observer(self.metrics)
        self.access.warn_if_open(self.config.service.address)
        with contextlib.suppress(Exception):
            await self.sandbox.prepare()
        if self.sessions is not None:
            await self.sessions.start()
        await self.server.start()
        self.queue.start()
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
        versioned: set[str] = set()  # the runtimes whose versions have been read
        last: str | None = ""  # neither None (serving) nor a reason: the first check is news
        while not self._draining:
            reported = await self.sandbox.readiness()
            served = (spec.key for spec in self._rules.catalog.runtimes())
            readiness = {key: reported.get(key, UNREPORTED) for key in served}
            ready = {key for key, reason in readiness.items() if reason is None}
            if ready - versioned:
                await self._learn_versions()
                versioned |= ready
            reason = unready_reason(readiness) or self.queue.problem
            if not self._draining:
                await self._set_health(_SERVING if reason is None else _NOT_SERVING, readiness)
            if reason != last:
                if reason is None:
                    event(log, logging.INFO, "server.serving", "serving")
                else:
                    message = f"not serving: {reason}"
                    event(log, logging.WARNING, "server.not_serving", message, reason=reason)
                last = reason
            # The period between checks, cut short when the queue's store changes its mind.
            self._poked.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(HEALTH_INTERVAL if reason is None else 1.0):
                    await self._poked.wait()

    def _poke_health(self) -> None:
        self._poked.set()

    async def _learn_versions(self) -> None:
        versions = await self.sandbox.versions()
        packages = await self.sandbox.packages()
        catalog = self._rules.catalog.with_versions(versions).with_packages(packages)
        self._rules = replace(self._rules, catalog=catalog)

    async def _set_health(
        self, status: int, readiness: Mapping[str, str | None] | None = None
    ) -> None:
        """Readiness names get `status`; each served runtime (language, version)
        SERVING when `readiness` says it is ready (else NOT_SERVING); liveness SERVING
        until draining."""
        for name in ("", SERVICE_NAME):
            await self.health.set(name, status)
        for spec in self._rules.catalog.runtimes():
            ready = readiness is not None and readiness.get(spec.key, UNREPORTED) is None
            status_of_runtime = _SERVING if ready else _NOT_SERVING
            await self.health.set(language_health_name(spec.key), status_of_runtime)
        await self.health.set(LIVENESS_NAME, _NOT_SERVING if self._draining else _SERVING)

    async def stop(self) -> None:
        self._draining = True
        await self._set_health(_NOT_SERVING)
        if self._watch:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        delay = self.config.service.shutdown_delay
        if delay > 0:
            message = f"not serving; still taking calls for {delay:.1f}s"
            event(log, logging.INFO, "server.shutdown_delay", message, delay_seconds=delay)
            # The feature, not a synchronisation: time for load balancers to
            # see NOT_SERVING and stop sending before calls are refused.
            await asyncio.sleep(delay)
        grace = self.config.service.shutdown_grace
        message = f"draining: in-flight executions get {grace:.1f}s"
        event(log, logging.INFO, "server.draining", message, grace_seconds=grace)
        # Calls and queued executions drain together: both get the grace; what the queue's
        # workers could not finish in it is handed back to the queue, not lost.
        await asyncio.gather(self.server.stop(grace), self.queue.stop(grace))
        if self.sessions is not None:  # they outlive the server unless told otherwise
            await self.sessions.stop()
        await self.sandbox.close()
        await self.access.close()
        telemetry.remove_observer(self.metrics)
        self.metrics.close()
        event(log, logging.INFO, "server.stopped", "stopped")


def language_health_name(runtime: str) -> str:
    """The health service name of one served language's version (its key: `python`
    for the default, `python-bookworm` for another)."""
    return f"{SERVICE_NAME}/{runtime}"


async def serve(
    config: ServerConfig,
    sandbox: Sandbox,
    catalog: Catalog,
    session_backend: SessionBackend | None = None,
    installer: Installer | None = None,
) -> None:
    """Run until SIGTERM or SIGINT, then drain and return."""
    app = Application(config, sandbox, catalog, session_backend, installer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, app.queue.reload)  # the queue's settings file
    await app.start()
    await stop.wait()
    await app.stop()
