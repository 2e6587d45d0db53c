"""The package cache over a fake installer: installs once, shares sets, fails cleanly,
hardens what it keeps, evicts the least recently used set that nothing mounts, and
survives a restart (the real installer in its container: tests/integration)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import stat
import threading
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.errors import FailedPrecondition, Reason
from codebeaker.runtimes.packages import cache as cache_module
from codebeaker.runtimes.packages.cache import (
    MANIFEST,
    PAYLOAD,
    PackageCache,
    PackageSet,
)
from codebeaker.runtimes.packages.requirements import Requirement, parse_range
from tests.unit.fake_installer import SIZE, FakeInstaller


@dataclass
class Observer:
    counts: Counter[str] = field(default_factory=Counter)
    outcomes: list[bool] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)

    def hit(self, language: str) -> None:
        self.counts[f"hit {language}"] += 1

    def miss(self, language: str) -> None:
        self.counts[f"miss {language}"] += 1

    def installed(self, language: str, seconds: float, ok: bool) -> None:
        assert seconds >= 0
        self.outcomes.append(ok)

    def size(self, total_bytes: int) -> None:
        self.sizes.append(total_bytes)


@pytest.fixture(scope="module")
def spec() -> LanguageSpec:
    return Catalog.load().resolve("python")


@pytest.fixture
def installer() -> FakeInstaller:
    return FakeInstaller()


@pytest.fixture
def observer() -> Observer:
    return Observer()


@dataclass
class Made:
    root: Path

    def __call__(
        self,
        installer: FakeInstaller,
        observer: Observer | None = None,
        max_bytes: int = 1 << 30,
        timeout: float = 30.0,
    ) -> PackageCache:
        return PackageCache(self.root, installer, max_bytes, timeout, observer)

    def sets(self) -> set[str]:
        return {p.name for p in (self.root / "sets").iterdir()}

    def staging(self) -> list[Path]:
        return list((self.root / "staging").iterdir())

    def requests(self) -> list[Path]:
        return list((self.root / "requests").iterdir())


@pytest.fixture
def make(tmp_path: Path) -> Made:
    return Made(tmp_path / "state" / "packages")


@pytest.fixture
def cache(make: Made, installer: FakeInstaller, observer: Observer) -> PackageCache:
    return make(installer, observer)


def req(name: str, versions: str = "") -> Requirement:
    return Requirement(name, parse_range(versions))


def gone(path: Path | str) -> bool:
    return not os.path.lexists(path)


async def pause() -> None:
    """Longer than the file system's clock tick, so that the next use is later."""
    await asyncio.sleep(0.03)


# Installing and finding.


async def test_the_first_acquire_installs_and_the_second_finds_it(
    cache: PackageCache,
    installer: FakeInstaller,
    observer: Observer,
    make: Made,
    spec: LanguageSpec,
) -> None:
    assert observer.sizes == [0]  # reported at start
    first = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 1
    assert observer.counts == Counter({"miss python": 1})
    assert observer.outcomes == [True]
    assert observer.sizes[-1] == SIZE
    assert first.directory == make.root / "sets" / first.key / PAYLOAD
    assert (first.directory / "tabulate").read_bytes() == b"x" * SIZE
    assert dict(first.resolved) == {"tabulate": "1.0"}
    assert not (first.directory.parent / "install.log").exists()  # only the payload is kept
    manifest = json.loads((first.directory.parent / MANIFEST).read_text())
    assert manifest == {
        "language": "python",
        "image": "sha256:image-1",
        "resolved": {"tabulate": "1.0"},
        "bytes": SIZE,
    }
    second = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 1
    assert observer.counts == Counter({"miss python": 1, "hit python": 1})
    assert observer.outcomes == [True]
    assert second == PackageSet(first.key, first.directory, first.resolved)
    assert cache.resolved(first.key) == {"tabulate": "1.0"}
    assert cache.resolved("no-such-key") == {}
    assert cache.total_bytes() == SIZE
    assert make.staging() == []


async def test_the_order_requirements_are_given_in_does_not_matter(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    one = await cache.acquire(spec, [req("a"), req("b", ">=1")])
    other = await cache.acquire(spec, [req("b", ">=1"), req("a")])
    assert installer.calls == 1
    assert one.key == other.key


async def test_another_index_or_image_is_another_request(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec, make: Made
) -> None:
    first = await cache.acquire(spec, [req("tabulate")])
    installer.where = "https://mirror.example/simple/"
    mirrored = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 2
    assert mirrored.key == first.key  # the same image and packages: the same set
    installer.image = "sha256:image-2"
    rebuilt = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 3
    assert rebuilt.key != first.key  # a set is for one image
    assert make.sets() == {first.key, rebuilt.key}


async def test_concurrent_acquires_of_one_set_install_once(
    cache: PackageCache, installer: FakeInstaller, observer: Observer, spec: LanguageSpec
) -> None:
    installer.gate = asyncio.Event()
    first = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await installer.started.wait()
    second = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await asyncio.sleep(0.01)
    assert not second.done()  # waiting for the install under way
    installer.gate.set()
    one, other = await asyncio.gather(first, second)
    assert installer.calls == 1
    assert one == other
    assert observer.counts == Counter({"miss python": 1, "hit python": 1})
    assert observer.outcomes == [True]


async def test_a_waiter_that_goes_away_does_not_stop_the_install(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    installer.gate = asyncio.Event()
    leaving = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await installer.started.wait()
    staying = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await asyncio.sleep(0)
    leaving.cancel()
    installer.gate.set()
    found = await staying
    assert leaving.cancelled()
    assert not installer.cancelled
    assert installer.calls == 1
    assert (found.directory / "tabulate").is_file()


async def test_two_requests_that_resolve_alike_share_one_set(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec, make: Made
) -> None:
    installer.versions = {"tabulate": "0.9.0"}
    newest = await cache.acquire(spec, [req("tabulate")])
    pinned = await cache.acquire(spec, [req("tabulate", "0.9")])
    assert installer.calls == 2  # two requests, each installed once
    assert newest.key == pinned.key
    assert newest.directory == pinned.directory
    assert make.sets() == {newest.key}
    assert len(make.requests()) == 2
    assert {p.read_text() for p in make.requests()} == {newest.key}
    assert cache.total_bytes() == SIZE  # counted once
    await cache.acquire(spec, [req("tabulate", "0.9")])
    assert installer.calls == 2


class _InStep:
    """`uuid` for the cache module whose uuid4, called off the event loop's thread
    (by `_keep`, naming the folder it moves a set into), waits a moment for the other
    install's call: both then move their set into place at the same time, unless the
    cache lets only one of them do so."""

    def __init__(self) -> None:
        self._together = threading.Barrier(2)

    def uuid4(self) -> uuid.UUID:
        if threading.current_thread() is not threading.main_thread():
            with contextlib.suppress(threading.BrokenBarrierError):
                self._together.wait(timeout=0.3)
        return uuid.uuid4()


async def test_concurrent_requests_that_resolve_alike_share_one_set(
    cache: PackageCache,
    installer: FakeInstaller,
    spec: LanguageSpec,
    make: Made,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    installer.versions = {"tabulate": "0.9.0"}
    installer.gate = asyncio.Event()
    monkeypatch.setattr(cache_module, "uuid", _InStep())
    newest = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    pinned = asyncio.create_task(cache.acquire(spec, [req("tabulate", "0.9")]))
    for _ in range(2):
        await installer.starts.get()
    installer.gate.set()  # both installs finish together
    one, other = await asyncio.gather(newest, pinned)
    assert installer.calls == 2
    assert one.key == other.key
    assert make.sets() == {one.key}  # and no half-moved folder beside it
    assert (one.directory / "tabulate").read_bytes() == b"x" * SIZE
    assert json.loads((one.directory.parent / MANIFEST).read_text())["bytes"] == SIZE


# Failures.


async def test_a_failed_install_is_failed_precondition_with_the_installers_message(
    cache: PackageCache,
    installer: FakeInstaller,
    observer: Observer,
    spec: LanguageSpec,
    make: Made,
) -> None:
    installer.fail = "ERROR: No matching distribution found for tabulate==9"
    with pytest.raises(FailedPrecondition) as caught:
        await cache.acquire(spec, [req("tabulate", "9")])
    error = caught.value
    assert error.reason == Reason.PACKAGE_INSTALL_FAILED
    assert str(error) == (
        "installing tabulate (==9) for python failed: "
        "ERROR: No matching distribution found for tabulate==9"
    )
    assert observer.outcomes == [False]
    assert make.staging() == []
    assert make.sets() == set()
    assert make.requests() == []
    # A failure is not remembered: the next request tries again.
    installer.fail = None
    found = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 2
    assert found.key in make.sets()


async def test_every_waiter_gets_the_failure(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    installer.fail = "boom"
    installer.gate = asyncio.Event()
    first = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await installer.started.wait()
    second = asyncio.create_task(cache.acquire(spec, [req("tabulate")]))
    await asyncio.sleep(0)
    installer.gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert installer.calls == 1
    for result in results:
        assert isinstance(result, FailedPrecondition), result
        assert str(result).endswith("failed: boom")


async def test_an_install_past_the_timeout_is_failed_precondition_saying_so(
    make: Made, installer: FakeInstaller, observer: Observer, spec: LanguageSpec
) -> None:
    cache = make(installer, observer, timeout=0.2)
    installer.hang = True
    loop = asyncio.get_running_loop()
    began = loop.time()
    with pytest.raises(FailedPrecondition) as caught:
        await cache.acquire(spec, [req("tabulate")])
    assert loop.time() - began < 5
    assert caught.value.reason == Reason.PACKAGE_INSTALL_FAILED
    assert str(caught.value).endswith("the install did not finish within 0.2 s")
    assert installer.cancelled  # the installer was stopped, not left running
    assert observer.outcomes == [False]
    assert make.staging() == []
    assert make.sets() == set()


async def test_a_slow_install_within_the_timeout_succeeds(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, timeout=5.0)
    installer.delay = 0.2
    found = await cache.acquire(spec, [req("tabulate")])
    assert (found.directory / "tabulate").is_file()


@pytest.mark.parametrize(
    ("versions", "asked", "said"),
    [
        (
            {"tabulate": "1.0"},
            "0.9",
            "installed tabulate 1.0, which does not meet tabulate (==0.9)",
        ),
        ({"tabulate": "2.0"}, ">=1, <2", "installed tabulate 2.0, which does not meet"),
        ({"tabulate": "dev"}, ">=1", "installed tabulate dev, which does not meet"),
    ],
)
async def test_an_installed_version_outside_the_requirement_fails(
    cache: PackageCache,
    installer: FakeInstaller,
    spec: LanguageSpec,
    make: Made,
    versions: dict[str, str],
    asked: str,
    said: str,
) -> None:
    installer.versions = versions
    with pytest.raises(
        FailedPrecondition, match=re.escape("failed: the installer " + said)
    ) as caught:
        await cache.acquire(spec, [req("tabulate", asked)])
    assert caught.value.reason == Reason.PACKAGE_INSTALL_FAILED
    assert make.sets() == set() and make.staging() == [] and make.requests() == []


async def test_a_package_missing_from_the_report_fails(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    original = installer.install

    async def forgetful(spec: LanguageSpec, requirements: Sequence[Requirement], out: Path) -> None:
        await original(spec, requirements[:1], out)  # installs only the first

    installer.install = forgetful  # type: ignore[method-assign]
    with pytest.raises(FailedPrecondition, match=r"installed b \(nothing\), which does not meet b"):
        await cache.acquire(spec, [req("a"), req("b")])


async def test_an_install_without_a_record_fails(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec, make: Made
) -> None:
    installer.write_report = False
    with pytest.raises(FailedPrecondition, match="left no readable record of its install"):
        await cache.acquire(spec, [req("tabulate")])
    assert make.sets() == set() and make.staging() == []


# Hardening.


async def test_what_is_kept_is_hardened(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec, tmp_path: Path
) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not the cache's")
    outside.chmod(0o4777)

    def odd_files(payload: Path) -> None:
        (payload / "setuid").write_bytes(b"#!/bin/sh\n")
        (payload / "setuid").chmod(0o4777)
        (payload / "setgid-data").write_bytes(b"data")
        (payload / "setgid-data").chmod(0o2666)
        (payload / "private").write_bytes(b"secret")
        (payload / "private").chmod(0o600)
        (payload / "owner-exec").write_bytes(b"run")
        (payload / "owner-exec").chmod(0o700)
        sub = payload / "sub"
        sub.mkdir()
        sub.chmod(0o3777)  # setgid, sticky, world-writable
        (sub / "deep").write_bytes(b"deep")
        (sub / "deep").chmod(0o666)
        os.mkfifo(payload / "pipe")
        os.mkfifo(sub / "pipe")
        (payload / "link").symlink_to(outside)
        (payload / "dangling").symlink_to(tmp_path / "nowhere")

    installer.extra = odd_files
    found = await cache.acquire(spec, [req("tabulate")])
    d = found.directory

    def mode(path: Path) -> int:
        return stat.S_IMODE(os.lstat(path).st_mode)

    assert mode(d / "setuid") == 0o755
    assert mode(d / "setgid-data") == 0o644
    assert mode(d / "private") == 0o644
    assert mode(d / "owner-exec") == 0o755
    assert mode(d / "tabulate") == 0o644
    assert mode(d / "sub") == 0o755
    assert mode(d / "sub" / "deep") == 0o644
    assert mode(d) == 0o755
    for path in d.rglob("*"):
        if not path.is_symlink():
            assert mode(path) & (stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX | 0o022) == 0, path
    assert gone(d / "pipe")
    assert gone(d / "sub" / "pipe")
    assert (d / "link").is_symlink()
    assert os.readlink(d / "link") == str(outside)
    assert (d / "dangling").is_symlink()
    assert mode(outside) == 0o4777  # never followed
    # Only regular files count: the package, the four files and sub/deep.
    assert cache.total_bytes() == SIZE + len(b"#!/bin/sh\n") + 4 + 6 + 3 + 4


async def test_an_install_with_no_payload_keeps_an_empty_readable_set(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    original = installer.install

    async def report_only(
        spec: LanguageSpec, requirements: Sequence[Requirement], out: Path
    ) -> None:
        await original(spec, requirements, out)
        for path in (out / PAYLOAD).iterdir():
            path.unlink()
        (out / PAYLOAD).rmdir()

    installer.install = report_only  # type: ignore[method-assign]
    found = await cache.acquire(spec, [req("tabulate")])
    assert found.directory.is_dir()
    assert stat.S_IMODE(found.directory.stat().st_mode) == 0o755
    assert cache.total_bytes() == 0


# Eviction.


async def test_the_least_recently_used_set_is_evicted_above_the_cap(
    make: Made, installer: FakeInstaller, observer: Observer, spec: LanguageSpec
) -> None:
    cache = make(installer, observer, max_bytes=2 * SIZE + SIZE // 2)
    a = await cache.acquire(spec, [req("a")])
    await pause()
    b = await cache.acquire(spec, [req("b")])
    await pause()
    assert (await cache.acquire(spec, [req("a")])).key == a.key  # a hit: a is used again
    await pause()
    c = await cache.acquire(spec, [req("c")])
    assert make.sets() == {a.key, c.key}  # b, used least recently, went
    assert gone(b.directory)
    assert {p.read_text() for p in make.requests()} == {a.key, c.key}
    assert cache.total_bytes() == 2 * SIZE
    assert observer.sizes[-1] == 2 * SIZE
    assert installer.calls == 3
    await pause()
    again = await cache.acquire(spec, [req("b")])  # installed anew; a is now the oldest
    assert installer.calls == 4
    assert make.sets() == {c.key, again.key}


async def test_under_the_cap_nothing_is_evicted(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, max_bytes=3 * SIZE)
    keys = {(await cache.acquire(spec, [req(name)])).key for name in "abc"}
    assert make.sets() == keys


async def test_a_mounted_set_is_not_evicted(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, max_bytes=SIZE + SIZE // 2)
    async with cache.mounted(spec, [req("a")]) as mounted:
        await pause()
        b = await cache.acquire(spec, [req("b")])
        assert make.sets() == {mounted.package_set, b.key}  # above the cap: both in use
        await pause()
        c = await cache.acquire(spec, [req("c")])
        assert make.sets() == {mounted.package_set, c.key}  # b went, a (the oldest) stayed
        assert not gone(mounted.package_dir)
    await pause()
    d = await cache.acquire(spec, [req("d")])
    assert make.sets() == {d.key}  # no longer mounted: a and c went


async def test_two_leases_on_one_set_hold_it_until_both_end(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, max_bytes=SIZE + SIZE // 2)
    async with cache.mounted(spec, [req("a")]) as first:
        async with cache.mounted(spec, [req("a")]):
            pass
        await pause()
        await cache.acquire(spec, [req("b")])
        assert first.package_set in make.sets()  # the first lease still holds it
    assert installer.calls == 2


async def test_a_set_the_installer_reports_in_use_is_not_evicted(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, max_bytes=SIZE + SIZE // 2)
    a = await cache.acquire(spec, [req("a")])
    installer.busy = {a.key}  # a container of ours (a live session, say) mounts it
    await pause()
    b = await cache.acquire(spec, [req("b")])
    await pause()
    c = await cache.acquire(spec, [req("c")])
    assert make.sets() == {a.key, c.key}
    assert b.key not in make.sets()


async def test_eviction_goes_on_when_in_use_cannot_be_asked(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer, max_bytes=SIZE + SIZE // 2)
    installer.busy_fails = True
    async with cache.mounted(spec, [req("a")]) as mounted:
        await pause()
        b = await cache.acquire(spec, [req("b")])
        await pause()
        c = await cache.acquire(spec, [req("c")])
        assert make.sets() == {mounted.package_set, c.key}  # leases still count
        assert b.key not in make.sets()


# Restarts and mounting.


async def test_a_restarted_cache_finds_its_sets_and_clears_staging(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    first = await make(installer).acquire(spec, [req("tabulate")])
    leftover = make.root / "staging" / "interrupted"
    leftover.mkdir()
    (leftover / "half-installed").write_bytes(b"x")
    observer = Observer()
    restarted = make(installer, observer)
    assert make.staging() == []
    assert observer.sizes == [SIZE]  # what it holds, reported at start
    found = await restarted.acquire(spec, [req("tabulate")])
    assert installer.calls == 1
    assert observer.counts == Counter({"hit python": 1})
    assert found == first


async def test_a_restarted_cache_removes_what_an_interrupted_keep_or_eviction_left(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    kept = await make(installer).acquire(spec, [req("tabulate")])
    for name in (f".{kept.key}.0123abcd", f".{kept.key}.evicted.4567ef"):
        half = make.root / "sets" / name / PAYLOAD
        half.mkdir(parents=True)
        (half / "tabulate").write_bytes(b"x" * SIZE)
    make(installer)
    assert make.sets() == {kept.key}
    assert (kept.directory / "tabulate").is_file()


async def test_a_set_whose_folder_is_gone_is_installed_again(
    make: Made, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    cache = make(installer)
    first = await cache.acquire(spec, [req("tabulate")])
    (first.directory.parent / MANIFEST).unlink()  # damaged from outside
    again = await cache.acquire(spec, [req("tabulate")])
    assert installer.calls == 2
    assert again.key == first.key
    assert (again.directory.parent / MANIFEST).is_file()


async def test_mounted_yields_the_spec_with_its_package_set(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    async with cache.mounted(spec, [req("tabulate")]) as mounted:
        found = await cache.acquire(spec, [req("tabulate")])
        assert mounted.package_set == found.key
        assert mounted.package_dir == str(found.directory)
        assert mounted.installer_env == spec.installer_env
        assert mounted.env["PYTHONPATH"] == "/opt/codebeaker/packages"
        assert dict(mounted.env) == {**spec.env, **spec.installer_env}
        assert mounted.id == spec.id and mounted.run == spec.run
    assert spec.package_set == "" and "PYTHONPATH" not in spec.env  # the spec itself unchanged


async def test_mounted_without_requirements_is_the_spec_itself(
    cache: PackageCache, installer: FakeInstaller, spec: LanguageSpec
) -> None:
    async with cache.mounted(spec, []) as mounted:
        assert mounted is spec
    assert installer.calls == 0
