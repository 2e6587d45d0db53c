"""The one place in the server that names a backend: its config section, the
sandbox built over it, and the backend's own subcommands.

Everything else in the server sees only `codebeaker.runtimes.sandbox.Sandbox`
and asks it what it can do. Docker is the backend today; another would add
its section and its branch here, and a folder of its own under runtimes/.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.docker import DockerBackend, DockerSettings
from codebeaker.runtimes.docker.connection import EngineTLS
from codebeaker.runtimes.docker.images import add_images_command
from codebeaker.runtimes.docker.installer import DockerInstaller, Indexes
from codebeaker.runtimes.docker.labels import IMAGE_PREFIX, ImageNames
from codebeaker.runtimes.docker.sessions import DockerSessions as Sessions
from codebeaker.runtimes.packages.cache import Installer
from codebeaker.runtimes.sandbox import Sandbox
from codebeaker.runtimes.supervised import SupervisedSandbox
from codebeaker.server.options import SIZE, language_ids, parse_assignments, setting

if TYPE_CHECKING:
    from codebeaker.server.config import ServerConfig


@dataclass(frozen=True)
class BackendConfig:
    runtime: str = setting("runc", "OCI runtime for sandboxes: runc, or runsc (gVisor)")
    language_runtimes: str = setting(
        "", "per-language runtime overrides, e.g. python=runsc,js=runc"
    )
    instance: str = setting("default", "owner label value; leftovers with it are removed at start")
    sandbox_cpus: float = setting(1.0, "CPU quota of one sandbox, in CPUs")
    workspace_size: int = setting(64 << 20, "size of the sandbox's /workspace tmpfs", SIZE)
    tmp_size: int = setting(64 << 20, "size of the sandbox's /tmp tmpfs", SIZE)
    docker_host: str = setting(
        "", "Docker engine address, unix:// or tcp://; empty: DOCKER_HOST or the local socket"
    )
    image_prefix: str = setting(IMAGE_PREFIX, "runtime images are <prefix><language id>")
    image_tag: str = setting("", "tag of the runtime images; empty: latest")

    def settings(self, catalog: Catalog, environ: Mapping[str, str] = os.environ) -> DockerSettings:
        """The backend's settings, language names resolved to the catalog's ids
        (an unknown one is a ValueError naming the setting). TLS to a tcp://
        engine comes from Docker's own variables in `environ`."""
        try:
            assigned = parse_assignments(self.language_runtimes)
        except ValueError as error:
            raise ValueError(f"language_runtimes: {error}") from None
        ids = language_ids(catalog, assigned, "language_runtimes")
        host = self.docker_host or environ.get("DOCKER_HOST") or DockerSettings.docker_host
        settings = DockerSettings(
            docker_host=host,
            # Only tcp:// speaks TLS: stray TLS variables must not stop a unix-socket server.
            tls=EngineTLS.from_env(environ) if host.startswith("tcp://") else None,
            images=ImageNames(self.image_prefix, self.image_tag),
            runtime=self.runtime,
            language_runtimes=MappingProxyType(dict(zip(ids, assigned.values(), strict=True))),
            instance=self.instance,
            cpus=self.sandbox_cpus,
            workspace_bytes=self.workspace_size,
            tmp_bytes=self.tmp_size,
        )
        try:
            settings.address()
        except ValueError as error:
            raise ValueError(f"docker_host: {error}") from None
        return settings


@dataclass(frozen=True)
class Backends:
    """What the server runs on: one-shot sandboxes, sessions, the package installer."""

    sandbox: Sandbox
    sessions: Sessions
    installer: Installer


def build_sandbox(config: ServerConfig, catalog: Catalog) -> Sandbox:
    """The server's sandbox: pools and supervision over the configured backend."""
    return build_backends(config, catalog).sandbox


def build_backends(config: ServerConfig, catalog: Catalog) -> Backends:
    """The sandbox for one-shot runs, the session backend and the installer, over one engine."""
    backend = DockerBackend(catalog, config.backend.settings(catalog))
    packages = config.packages
    indexes = Indexes(pypi=packages.package_index, npm=packages.npm_registry)
    installer = DockerInstaller(backend.engine, backend.settings, indexes)
    return Backends(_sandbox(config, catalog, backend), Sessions(backend), installer)


def _sandbox(config: ServerConfig, catalog: Catalog, backend: DockerBackend) -> Sandbox:
    return SupervisedSandbox(
        catalog,
        backend,
        config.pools.settings(catalog),
        config.limits.limit_policy().default,
        isolation=config.pools.isolation,
        hosts=config.pools.host_settings(),
    )


def add_backend_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The backend's subcommands of `codebeaker` (`images build`)."""
    add_images_command(subparsers)
