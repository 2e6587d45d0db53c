"""A fake package installer for unit tests of the cache and the server: it writes
each requirement as a file of SIZE bytes and a pip report of what it "installed",
counts its calls, and can be told to fail, hang, be slow or report other versions."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.packages.cache import PAYLOAD, InstallFailed
from codebeaker.runtimes.packages.requirements import PIP_REPORT, Requirement

SIZE = 1000  # bytes of each package the fake installs


@dataclass
class FakeInstaller:
    """Writes each requirement as a package of SIZE bytes and a pip report saying so."""

    versions: dict[str, str] = field(default_factory=dict)  # reported; "1.0" otherwise
    fail: str | None = None  # InstallFailed with this message
    hang: bool = False
    delay: float = 0.0
    gate: asyncio.Event | None = None  # waited for before installing
    write_report: bool = True
    extra: Callable[[Path], None] | None = None  # more files, into the payload
    image: str = "sha256:image-1"
    where: str = "https://pypi.example/simple/"
    busy: set[str] = field(default_factory=set)
    busy_fails: bool = False
    calls: int = 0
    started: asyncio.Event = field(default_factory=asyncio.Event)
    starts: asyncio.Queue[None] = field(default_factory=asyncio.Queue)
    cancelled: bool = False

    def index(self, spec: LanguageSpec) -> str:
        return self.where

    async def image_key(self, spec: LanguageSpec) -> str:
        return self.image

    async def install(
        self, spec: LanguageSpec, requirements: Sequence[Requirement], out: Path
    ) -> None:
        self.calls += 1
        self.started.set()
        self.starts.put_nowait(None)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            if self.hang:
                await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        payload = out / PAYLOAD
        payload.mkdir()
        (out / "install.log").write_text("scratch the cache must not keep")
        installed = []
        for requirement in requirements:
            (payload / requirement.name).write_bytes(b"x" * SIZE)
            version = self.versions.get(requirement.name, "1.0")
            installed.append({"metadata": {"name": requirement.name, "version": version}})
        if self.extra is not None:
            self.extra(payload)
        if self.fail is not None:
            raise InstallFailed(self.fail)
        if self.write_report:
            (out / PIP_REPORT).write_text(json.dumps({"version": "1", "install": installed}))

    async def in_use(self) -> set[str]:
        if self.busy_fails:
            raise RuntimeError("the engine is away")
        return set(self.busy)
