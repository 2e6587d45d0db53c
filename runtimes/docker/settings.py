"""Tunables of the Docker sandbox that do not vary per request."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from codebeaker.runtimes.docker.connection import EngineAddress, EngineTLS
from codebeaker.runtimes.docker.labels import ImageNames
from codebeaker.runtimes.limits import MIB

GVISOR = "runsc"


@dataclass(frozen=True)
class DockerSettings:
    # DOCKER_HOST-style address of the engine: unix://, or tcp:// (TLS when `tls` is set).
    docker_host: str = "unix:///var/run/docker.sock"
    # TLS to a tcp:// engine, from DOCKER_TLS_VERIFY / DOCKER_TLS / DOCKER_CERT_PATH.
    tls: EngineTLS | None = None
    # Names of the runtime images: `<prefix><language id>[:<tag>]`.
    images: ImageNames = field(default_factory=ImageNames)
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

    def address(self) -> EngineAddress:
        """Where the engine is; a ValueError when `docker_host` is not an address."""
        return EngineAddress.parse(self.docker_host, self.tls)
