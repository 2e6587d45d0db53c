"""The trusted package installer: a container of the language's `installer` image.

It runs outside every sandbox and runs no package's code: pip with
`--only-binary=:all:` unpacks wheels and never builds a source distribution;
npm with `--ignore-scripts` runs no lifecycle script. It still runs with the
least it needs: the server's own uid, every capability dropped,
no-new-privileges, a read-only root, a tmpfs for its scratch, a memory and
process cap, the host's network (to reach the configured index as the server
would) and one writable bind: the staging folder it installs into, which the
cache then hardens and mounts read-only into sandboxes. The host's CA bundle
goes in read-only, so an index behind a TLS-intercepting proxy is trusted as
the host trusts it. What it prints goes to a log in the staging folder, whose
tail is the error a failed install reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.docker.engine import Engine
from codebeaker.runtimes.docker.labels import (
    INSTALLER_LABEL,
    OWNER_LABEL,
    PACKAGE_SET_LABEL,
    image_for,
    installer_image_for,
)
from codebeaker.runtimes.docker.settings import DockerSettings
from codebeaker.runtimes.errors import CodeBeakerError
from codebeaker.runtimes.packages.cache import InstallFailed
from codebeaker.runtimes.packages.requirements import KINDS, NPM_PREFIX, PIP_REPORT, Requirement

PYPI = "https://pypi.org/simple/"
NPM_REGISTRY = "https://registry.npmjs.org/"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_IN_INSTALLER = "/etc/codebeaker/host-ca.pem"
OUT = "/out"
LOG = "install.log"
LOG_TAIL = 2000  # characters of the installer's output in an error
MEMORY = 2 << 30
PIDS = 512
SCRATCH = "4g"


@dataclass(frozen=True)
class Indexes:
    pypi: str = PYPI
    npm: str = NPM_REGISTRY


def installer_argv(kind: str, index: str, requirements: Sequence[Requirement]) -> list[str]:
    spelled = [KINDS[kind].spell(r) for r in requirements]
    if kind == "pip":
        return [
            "python3", "-m", "pip", "install",
            "--target", f"{OUT}/packages",
            "--only-binary=:all:",  # wheels only: nothing is built, no setup.py runs
            "--no-cache-dir", "--disable-pip-version-check", "--no-input",
            "--no-warn-script-location", "--progress-bar", "off",
            "--report", f"{OUT}/{PIP_REPORT}",
            "--index-url", index,
            *spelled,
        ]  # fmt: skip
    return [
        "npm", "install",
        "--prefix", f"{OUT}/{NPM_PREFIX}",
        "--ignore-scripts",  # no lifecycle script of any package runs
        "--omit=dev", "--no-audit", "--no-fund", "--no-update-notifier",
        "--cache", "/tmp/npm-cache", "--registry", index,
        *spelled,
    ]  # fmt: skip


class DockerInstaller:
    def __init__(self, engine: Engine, settings: DockerSettings, indexes: Indexes) -> None:
        self._engine = engine
        self._settings = settings
        self._indexes = indexes

    def index(self, spec: LanguageSpec) -> str:
        return self._indexes.pypi if spec.installer == "pip" else self._indexes.npm

    async def image_key(self, spec: LanguageSpec) -> str:
        return await self._engine.image_id(image_for(spec, self._settings.images))

    async def in_use(self) -> set[str]:
        found = await self._engine.containers(f"{OWNER_LABEL}={self._settings.instance}")
        return {c.labels[PACKAGE_SET_LABEL] for c in found if PACKAGE_SET_LABEL in c.labels}

    async def install(
        self, spec: LanguageSpec, requirements: Sequence[Requirement], out: Path
    ) -> None:
        argv = installer_argv(spec.installer, self.index(spec), requirements)
        config = self._config(spec, argv, out)
        try:
            container_id = await self._engine.create(config)
        except CodeBeakerError as error:
            raise InstallFailed(f"the installer could not start: {error}") from None
        try:
            await self._engine.start(container_id)
            state = await self._engine.wait_exit(container_id, within=3600)
            while state.running:  # the cache's own timeout ends a slow install
                state = await self._engine.wait_exit(container_id, within=3600)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._engine.remove(container_id))
        if state.oom_killed:
            raise InstallFailed(f"the installer ran out of memory ({MEMORY >> 20} MiB)")
        if state.exit_code != 0:
            raise InstallFailed(_tail(out / LOG) or f"the installer exited with {state.exit_code}")

    def _config(self, spec: LanguageSpec, argv: list[str], out: Path) -> dict[str, object]:
        env = ["HOME=/tmp", "PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"]
        mounts: list[dict[str, object]] = [{"Type": "bind", "Source": str(out), "Target": OUT}]
        if HOST_CA_BUNDLE.is_file():
            mounts.append(
                {
                    "Type": "bind",
                    "Source": str(HOST_CA_BUNDLE),
                    "Target": CA_IN_INSTALLER,
                    "ReadOnly": True,
                }
            )
            env += [f"PIP_CERT={CA_IN_INSTALLER}", f"NODE_EXTRA_CA_CERTS={CA_IN_INSTALLER}"]
        return {
            "Image": installer_image_for(spec, self._settings.images),
            # Its output to a log beside what it installs: read after it ends.
            "Cmd": ["sh", "-c", f'exec "$@" >{OUT}/{LOG} 2>&1', "installer", *argv],
            "User": f"{os.getuid()}:{os.getgid()}",
            "WorkingDir": "/tmp",
            "Env": env,
            "Labels": {OWNER_LABEL: self._settings.instance, INSTALLER_LABEL: spec.id},
            "HostConfig": {
                "NetworkMode": "host",
                "ReadonlyRootfs": True,
                "Tmpfs": {"/tmp": f"rw,nosuid,nodev,size={SCRATCH}"},
                "Mounts": mounts,
                "CapDrop": ["ALL"],
                "SecurityOpt": ["no-new-privileges"],
                "PidsLimit": PIDS,
                "Memory": MEMORY,
                "MemorySwap": MEMORY,
                "LogConfig": {"Type": "none", "Config": {}},
            },
        }


def _tail(log: Path) -> str:
    try:
        text = log.read_text(errors="replace").strip()
    except OSError:
        return ""
    return text if len(text) <= LOG_TAIL else "..." + text[-LOG_TAIL:]
