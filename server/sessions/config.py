"""The `sessions` config section: how many, how big, how long, how watched."""

from __future__ import annotations

import os
from dataclasses import dataclass

from codebeaker.runtimes.limits import LimitPolicy
from codebeaker.runtimes.model import Limits
from codebeaker.runtimes.sessions.backend import SessionLimits
from codebeaker.server.options import SIZE, setting


@dataclass(frozen=True)
class SessionConfig:
    max_sessions: int = setting(
        100, "live sessions at most on this server; more are RESOURCE_EXHAUSTED"
    )
    session_idle_timeout: float = setting(
        600.0, "default seconds a session may stay without an Exec or file call"
    )
    session_lifetime: float = setting(3600.0, "default longest life of a session, seconds")
    session_max_lifetime: float = setting(
        86400.0, "longest life (and idle timeout) a session may ask for, seconds"
    )
    session_disk: int = setting(256 << 20, "default size of a session's working directory", SIZE)
    session_max_disk: int = setting(
        2 << 30, "largest working directory a session may ask for", SIZE
    )
    session_max_cpus: float = setting(
        0.0, "most CPUs a session may ask for; 0: the machine's CPU count"
    )
    session_exec_max_time: float = setting(
        3600.0, "longest wall or CPU time limit one Exec may ask for, seconds"
    )
    session_spares: int = setting(
        1, "started sandboxes kept ready per language sessions were created for (0: none)"
    )
    session_usage_interval: float = setting(
        5.0, "seconds between usage samples of every session (metrics, events)"
    )
    session_retention: float = setting(
        3600.0, "seconds an ended (terminated or failed) session stays visible"
    )
    session_reconcile_interval: float = setting(
        30.0, "seconds between comparisons of the session registry with the engine"
    )
    end_sessions_on_exit: int = setting(
        0, "1: a stopping server deletes every session (default: they outlive it)"
    )

    def check(self) -> None:
        if self.max_sessions < 0:
            raise ValueError("max_sessions must not be negative")
        for name in ("session_idle_timeout", "session_lifetime", "session_usage_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be above 0")
        if self.session_lifetime > self.session_max_lifetime:
            raise ValueError("session_lifetime is above session_max_lifetime")
        if self.session_disk > self.session_max_disk or self.session_disk < 1 << 20:
            raise ValueError("session_disk must be at least 1M and at most session_max_disk")
        if self.session_spares < 0:
            raise ValueError("session_spares must not be negative")
        if self.session_reconcile_interval <= 0 or self.session_reconcile_interval > 30:
            raise ValueError("session_reconcile_interval must be in (0, 30] seconds")

    def max_cpus(self) -> float:
        return self.session_max_cpus or float(os.cpu_count() or 1)


@dataclass(frozen=True)
class SessionPolicy:
    """Defaults and maxima of a session's sandbox and of its Execs."""

    sandbox_default: SessionLimits
    sandbox_maximum: SessionLimits
    exec_policy: LimitPolicy  # wall, CPU and output of one Exec; memory/processes: the sandbox's


def session_policy(config: SessionConfig, execution: LimitPolicy, cpus: float) -> SessionPolicy:
    """The session rules from the sessions section and the execution limits section."""
    default = execution.default
    maximum = execution.maximum
    longest = config.session_exec_max_time
    exec_maximum = Limits(
        wall_time=max(longest, default.wall_time),
        cpu_time=max(longest, default.cpu_time),
        memory_bytes=maximum.memory_bytes,
        max_processes=maximum.max_processes,
        max_output_bytes=maximum.max_output_bytes,
    )
    return SessionPolicy(
        sandbox_default=SessionLimits(
            default.memory_bytes, default.max_processes, config.session_disk, cpus
        ),
        sandbox_maximum=SessionLimits(
            maximum.memory_bytes, maximum.max_processes, config.session_max_disk, config.max_cpus()
        ),
        exec_policy=LimitPolicy(default, exec_maximum),
    )
