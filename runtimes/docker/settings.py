"""Tunables of the Docker sandbox that do not vary per request."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from codebeaker.runtimes.limits import MIB

GVISOR = "runsc"


@dataclass(frozen=True)
class DockerSettings:
    # DOCKER_HOST-style address of the engine (unix:// or tcp:// without TLS).
    docker_host: str = "unix:///var/run/docker.sock"
    # OCI runtime: "runc" or "runsc" (gVisor); per-language overrides below.
    runtime: str = "runc"
    language_runtimes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Marks our containers so a restarted server removes its own orphans.
    instance: str = "default"
    # CPU quota of one sandbox, in CPUs.
    cpus: float = 1.0
    workspace_bytes: int = 64 * MIB
    tmp_bytes: int = 64 * MIB
    shm_bytes: int = 16 * MIB
    open_files: int = 1024
    # Threads for blocking Docker API calls (never run on the event loop).
    api_threads: int = 32
    # How long a teardown may take before we give up on it (logged).
    teardown_timeout: float = 30.0

    def resizable(self, language: str) -> bool:
        """Whether a started sandbox's memory limit can change (runsc cannot)."""
        return self.runtime_for(language) != GVISOR

    def runtime_for(self, language: str) -> str:
        return self.language_runtimes.get(language, self.runtime)

    def runtimes(self) -> set[str]:
        return {self.runtime, *self.language_runtimes.values()}

    @staticmethod
    def host_from_env() -> str:
        return os.environ.get("DOCKER_HOST") or DockerSettings.docker_host
