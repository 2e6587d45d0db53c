"""The package cache: each allowed set installed once, kept by content, evicted LRU.

Layout under the cache's root (the server's `<state-dir>/packages` unless told):

- `sets/<key>/packages/`: one installed set, the folder mounted read-only into
  sandboxes; `<key>` hashes the runtime image and every package the installer
  resolved, with its version (two requests that resolve alike share one set);
  `sets/<key>/manifest.json` records what it holds and its size; the folder's
  mtime is its last use.
- `requests/<key>`: what a request asked for (the image, the requirements, the
  index) -> the set its install resolved to, so that a repeated request needs
  neither the installer nor the network.
- `staging/`: installs under way; what an interrupted one leaves is removed at start,
  as are the hidden `sets/.<key>.*` folders of a set being moved in or evicted.

Concurrent requests for one set wait for the same install. After an install,
sets are evicted, least recently used first, until the cache is under its cap;
a set that a running sandbox or a live session mounts is never evicted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import shutil
import stat
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.errors import FailedPrecondition, Reason
from codebeaker.runtimes.packages.requirements import KINDS, Requirement, RequirementError
from codebeaker.runtimes.telemetry import phase

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
PAYLOAD = "packages"  # the installer's output folder that sandboxes mount


class InstallFailed(Exception):
    """The installer did not install the set; the message is the installer's own."""


class Installer(Protocol):
    """Runs a language's trusted installer (outside every sandbox)."""

    def index(self, spec: LanguageSpec) -> str:
        """Where `spec`'s packages come from (part of a request's key)."""
        ...

    async def image_key(self, spec: LanguageSpec) -> str:
        """The id of the image a set is installed for (part of its key)."""
        ...

    async def install(
        self, spec: LanguageSpec, requirements: Sequence[Requirement], out: Path
    ) -> None:
        """Install into `out` (its PAYLOAD folder and the installer's record), or
        InstallFailed with what the installer said."""
        ...

    async def in_use(self) -> set[str]:
        """Keys of the sets some container of ours mounts now."""
        ...


class CacheObserver(Protocol):
    def hit(self, language: str) -> None: ...
    def miss(self, language: str) -> None: ...
    def installed(self, language: str, seconds: float, ok: bool) -> None: ...
    def size(self, total_bytes: int) -> None: ...


class _Quiet:
    def hit(self, language: str) -> None:
        pass

    def miss(self, language: str) -> None:
        pass

    def installed(self, language: str, seconds: float, ok: bool) -> None:
        pass

    def size(self, total_bytes: int) -> None:
        pass


@dataclass(frozen=True)
class PackageSet:
    key: str
    directory: Path  # what sandboxes mount
    resolved: Mapping[str, str]  # every package installed -> its version


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:32]


class PackageCache:
    def __init__(
        self,
        root: Path,
        installer: Installer,
        max_bytes: int,
        install_timeout: float,
        observer: CacheObserver | None = None,
    ) -> None:
        self._root = root
        self._installer = installer
        self._max_bytes = max_bytes
        self._timeout = install_timeout
        self._observer: CacheObserver = observer or _Quiet()
        self._installs: dict[str, asyncio.Future[PackageSet]] = {}
        self._leases: Counter[str] = Counter()
        self._keeping = threading.Lock()  # two installs that resolve alike keep one set
        root.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # the state folder
        root.mkdir(exist_ok=True, mode=0o700)
        for folder in ("sets", "requests", "staging"):
            (root / folder).mkdir(exist_ok=True)
        shutil.rmtree(root / "staging", ignore_errors=True)
        (root / "staging").mkdir()
        for stale in (root / "sets").glob(".*"):  # what an interrupted keep or eviction left
            shutil.rmtree(stale, ignore_errors=True)
        self._observer.size(self.total_bytes())

    @contextlib.asynccontextmanager
    async def mounted(
        self, spec: LanguageSpec, requirements: Sequence[Requirement]
    ) -> AsyncIterator[LanguageSpec]:
        """`spec` with the set of `requirements` mounted, held while the block runs
        (never evicted meanwhile); `spec` itself when there are none."""
        if not requirements:
            yield spec
            return
        package_set = await self.acquire(spec, requirements)
        self._leases[package_set.key] += 1
        try:
            yield spec.with_package_set(package_set.key, str(package_set.directory))
        finally:
            self._leases[package_set.key] -= 1
            if not self._leases[package_set.key]:
                del self._leases[package_set.key]

    async def acquire(self, spec: LanguageSpec, requirements: Sequence[Requirement]) -> PackageSet:
        """The installed set: from the cache, from an install under way, or installed now."""
        image = await self._installer.image_key(spec)
        asked = [f"{r.name}{''.join(str(c) for c in r.constraints)}" for r in sorted(requirements)]
        request_key = _digest(
            {
                "image": image,
                "installer": spec.installer,
                "index": self._installer.index(spec),
                "requirements": asked,
            }
        )
        found = self._lookup(request_key)
        if found is not None:
            self._observer.hit(spec.id)
            return found
        pending = self._installs.get(request_key)
        if pending is None:
            self._observer.miss(spec.id)
            pending = asyncio.ensure_future(self._install(spec, requirements, image, request_key))
            self._installs[request_key] = pending
            pending.add_done_callback(lambda _: self._installs.pop(request_key, None))
        else:
            self._observer.hit(spec.id)  # served by the install under way: installed once
        return await asyncio.shield(pending)

    def _lookup(self, request_key: str) -> PackageSet | None:
        try:
            key = (self._root / "requests" / request_key).read_text().strip()
            manifest = json.loads((self._root / "sets" / key / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        folder = self._root / "sets" / key
        with contextlib.suppress(OSError):
            os.utime(folder)  # its last use, for eviction
        return PackageSet(key, folder / PAYLOAD, manifest["resolved"])

    async def _install(
        self, spec: LanguageSpec, requirements: Sequence[Requirement], image: str, request_key: str
    ) -> PackageSet:
        staging = self._root / "staging" / uuid.uuid4().hex
        staging.mkdir()
        started = time.monotonic()
        ok = False
        try:
            with phase("install_packages", language=spec.id, packages=len(requirements)):
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._installer.install(spec, requirements, staging)
                except TimeoutError:
                    raise InstallFailed(
                        f"the install did not finish within {self._timeout:g} s"
                    ) from None
                resolved = _resolved(spec, requirements, staging)
            package_set = await asyncio.to_thread(self._keep, staging, spec, image, resolved)
            (self._root / "requests" / request_key).write_text(package_set.key)
            ok = True
        except InstallFailed as error:
            names = ", ".join(str(r) for r in requirements)
            raise FailedPrecondition(
                f"installing {names} for {spec.id} failed: {error}",
                reason=Reason.PACKAGE_INSTALL_FAILED,
            ) from None
        finally:
            self._observer.installed(spec.id, time.monotonic() - started, ok)
            shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "installed %d packages for %s in %.1f s: %s",
            len(package_set.resolved),
            spec.id,
            time.monotonic() - started,
            ", ".join(f"{n} {v}" for n, v in sorted(package_set.resolved.items())),
        )
        await self._evict(keep=package_set.key)
        return package_set

    def _keep(
        self, staging: Path, spec: LanguageSpec, image: str, resolved: Mapping[str, str]
    ) -> PackageSet:
        """Make the staged set readable by anyone and writable by none but us, without
        set-id bits, and move it to its place (unless an equal set is there already)."""
        key = _digest({"image": image, "installer": spec.installer, "resolved": dict(resolved)})
        payload = staging / PAYLOAD
        payload.mkdir(exist_ok=True)
        size = _harden(payload)
        folder = self._root / "sets" / key
        with self._keeping:  # the check and the move as one, or both would move theirs
            if not (folder / MANIFEST).is_file():
                shutil.rmtree(folder, ignore_errors=True)
                manifest = {
                    "language": spec.id,
                    "image": image,
                    "resolved": dict(resolved),
                    "bytes": size,
                }
                (staging / MANIFEST).write_text(json.dumps(manifest, sort_keys=True))
                target = self._root / "sets" / f".{key}.{uuid.uuid4().hex}"
                target.mkdir()
                (staging / PAYLOAD).rename(target / PAYLOAD)
                (staging / MANIFEST).rename(target / MANIFEST)
                target.rename(folder)
            os.utime(folder)
        return PackageSet(key, folder / PAYLOAD, resolved)

    def resolved(self, key: str) -> Mapping[str, str]:
        """What the set `key` holds: each package installed -> its version."""
        try:
            manifest = json.loads((self._root / "sets" / key / MANIFEST).read_text())
        except (OSError, ValueError):
            return {}
        return dict(manifest.get("resolved", {}))

    def total_bytes(self) -> int:
        return sum(size for _, size, _ in self._sets())

    def _sets(self) -> list[tuple[str, int, float]]:
        """(key, bytes, last use) of every set kept."""
        found = []
        for folder in (self._root / "sets").iterdir():
            if folder.name.startswith("."):
                continue
            try:
                manifest = json.loads((folder / MANIFEST).read_text())
                found.append((folder.name, int(manifest["bytes"]), folder.stat().st_mtime))
            except (OSError, ValueError, KeyError):
                continue
        return found

    async def _evict(self, keep: str) -> None:
        sets = sorted(self._sets(), key=lambda item: item[2])
        total = sum(size for _, size, _ in sets)
        if total > self._max_bytes:
            busy = set(self._leases) | {keep}
            with contextlib.suppress(Exception):
                busy |= await self._installer.in_use()
            for key, size, _ in sets:
                if total <= self._max_bytes:
                    break
                if key in busy:
                    continue
                await asyncio.to_thread(self._remove, key)
                total -= size
                log.info("evicted package set %s (%d bytes)", key, size)
            if total > self._max_bytes:
                log.warning(
                    "package cache holds %d bytes, above its cap %d: every set left is in use",
                    total,
                    self._max_bytes,
                )
        self._observer.size(total)

    def _remove(self, key: str) -> None:
        for request in (self._root / "requests").iterdir():
            with contextlib.suppress(OSError):
                if request.read_text().strip() == key:
                    request.unlink()
        folder = self._root / "sets" / key
        doomed = self._root / "sets" / f".{key}.evicted.{uuid.uuid4().hex}"
        with contextlib.suppress(OSError):
            folder.rename(doomed)
            shutil.rmtree(doomed, ignore_errors=True)


def _resolved(spec: LanguageSpec, requirements: Sequence[Requirement], out: Path) -> dict[str, str]:
    """What the installer installed; InstallFailed unless every requirement is there
    at a version it allows (the installer is trusted, and checked anyway)."""
    kind = KINDS[spec.installer]
    try:
        resolved = kind.installed(out)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InstallFailed(
            f"the installer left no readable record of its install: {error}"
        ) from None
    for requirement in requirements:
        version = resolved.get(requirement.name)
        try:
            allowed = version is not None and requirement.allows(version)
        except RequirementError:
            allowed = False
        if not allowed:
            raise InstallFailed(
                f"the installer installed {requirement.name} {version or '(nothing)'}, "
                f"which does not meet {requirement}"
            )
    return resolved


def _harden(folder: Path) -> int:
    """Files a+r, folders a+rx, nothing writable but by the owner, no set-id bits;
    symbolic links left as they are (never followed). The bytes of regular files."""
    size = 0
    for directory, subdirs, files in os.walk(folder):
        for name in [*subdirs, *files]:
            path = os.path.join(directory, name)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            mode = stat.S_IMODE(info.st_mode) & ~(stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX)
            mode = (mode | 0o444) & ~0o022
            if stat.S_ISDIR(info.st_mode) or mode & 0o100:
                mode |= 0o555
            if stat.S_ISREG(info.st_mode):
                size += info.st_size
            elif not stat.S_ISDIR(info.st_mode):
                os.unlink(path)  # no devices, sockets or pipes in a package set
                continue
            os.chmod(path, mode)
    os.chmod(folder, 0o755)
    return size
