"""Sessions as one part of the server: built from its config, started, stopped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.limits import LimitPolicy
from codebeaker.runtimes.packages.allowlist import Allowlist
from codebeaker.runtimes.packages.cache import PackageCache
from codebeaker.runtimes.sessions.backend import SessionBackend
from codebeaker.server.logs import event
from codebeaker.server.quotas import Tenancy
from codebeaker.server.sessions.config import SessionConfig, session_policy
from codebeaker.server.sessions.manager import Sessions
from codebeaker.server.sessions.metrics import SessionMetrics
from codebeaker.server.sessions.registry import Registry
from codebeaker.server.sessions.service import SessionServicer
from codebeaker.server.sessions.spares import Spares
from codebeaker.server.sessions.upkeep import Upkeep

log = logging.getLogger(__name__)


class SessionRuntime:
    def __init__(
        self,
        backend: SessionBackend,
        config: SessionConfig,
        *,
        state_dir: Path,
        catalog: Callable[[], Catalog],
        execution_policy: LimitPolicy,
        cpus: float,
        resizable: Callable[[str], bool],
        file_caps: tuple[int, int],
        registry: CollectorRegistry,
        tenancy: Tenancy | None = None,
        allowlist: Allowlist | None = None,
        packages: PackageCache | None = None,
    ) -> None:
        self.config = config
        self.policy = session_policy(config, execution_policy, cpus)
        self.metrics = SessionMetrics(registry, lambda: list(self.sessions.records.values()))
        self.sessions = Sessions(
            backend,
            Registry(state_dir),
            specs=lambda language, version: catalog().select(language, version),
            max_sessions=config.max_sessions,
            spares=Spares(backend, self.policy.sandbox_default, config.session_spares),
            resizable=resizable,
            on_exec_done=self.metrics.exec_done,
            packages=packages,
        )
        self.upkeep = Upkeep(
            self.sessions,
            usage_interval=config.session_usage_interval,
            reconcile_interval=config.session_reconcile_interval,
            retention=config.session_retention,
            on_usage=self.metrics.usage,
        )
        self.servicer = SessionServicer(
            self.sessions, catalog, self.policy, config, file_caps, tenancy, allowlist
        )

    async def start(self) -> None:
        await self.sessions.load()
        self.upkeep.start()
        live = sum(1 for r in self.sessions.records.values() if r.state.live)
        event(log, logging.INFO, "sessions.started", f"{live} sessions live", sessions=live)

    async def stop(self) -> None:
        await self.upkeep.stop()
        await self.sessions.close(end_sessions=bool(self.config.end_sessions_on_exit))
