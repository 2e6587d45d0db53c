"""The engine connection against a fake Docker engine on a unix socket: the API
version is negotiated (never pinned) and reaches both the APIClient and the raw
attach request; an engine too old, or upgraded under us, is a clear error."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import MappingProxyType

import pytest

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.docker import DockerBackend, DockerSettings
from codebeaker.runtimes.docker.connection import (
    NEWEST_API,
    OLDEST_API,
    EngineAddress,
    EngineTLS,
    negotiate,
)
from codebeaker.runtimes.docker.engine import Engine
from codebeaker.runtimes.docker.labels import ImageNames
from codebeaker.runtimes.errors import EngineUnavailable
from codebeaker.runtimes.sandbox import unready_reason
from tests.unit.fake_engine import ATTACH_OUTPUT, FakeEngine, Running, serve_unix
from tests.unit.jobs import LIMITS

ATTACH_QUERY = "/attach?stream=1&stdin=1&stdout=1&stderr=1"


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Short: a unix socket path must fit in 108 bytes, and pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="cb-engine-") as folder:
        yield Path(folder)


def start(engine: FakeEngine, folder: Path) -> Running:
    return serve_unix(engine, folder / "docker.sock")


@pytest.fixture
async def docker29(socket_dir: Path) -> AsyncIterator[Running]:
    """Docker 29's range: newest 1.52, refuses below 1.44."""
    running = start(FakeEngine(newest="1.52", oldest="1.44"), socket_dir)
    yield running
    running.close()


async def read_all(engine: Engine, container_id: str) -> bytes:
    stream = await engine.attach(container_id)
    try:
        return await stream.reader.read()
    finally:
        stream.close()


async def test_docker_29_gets_its_newest_version_in_control_calls_and_attach(
    docker29: Running,
) -> None:
    engine = Engine(EngineAddress.parse(docker29.address), threads=2)
    try:
        await engine.ping()
        assert engine.api_version == "1.52"
        assert await engine.oci_runtimes() == {"runc"}
        assert ATTACH_OUTPUT in await read_all(engine, "abc123")
    finally:
        engine.close()
    lines = docker29.engine.lines()
    assert "GET /v1.52/_ping" in lines and "GET /v1.52/info" in lines
    assert f"POST /v1.52/containers/abc123{ATTACH_QUERY}" in lines
    assert not any("/v1.41/" in line for line in lines)  # what a pinned client sent


async def test_docker_20_10_is_spoken_to_at_1_41_even_when_attach_comes_first(
    socket_dir: Path,
) -> None:
    running = start(FakeEngine(newest="1.41", oldest="1.12"), socket_dir)
    engine = Engine(EngineAddress.parse(running.address), threads=2)
    try:
        assert ATTACH_OUTPUT in await read_all(engine, "c1")
        assert engine.api_version == "1.41"
    finally:
        engine.close()
        running.close()
    assert f"POST /v1.41/containers/c1{ATTACH_QUERY}" in running.engine.lines()


async def test_a_newer_engine_is_spoken_to_at_the_newest_version_we_know(
    socket_dir: Path,
) -> None:
    running = start(FakeEngine(newest="1.60", oldest="1.44"), socket_dir)
    engine = Engine(EngineAddress.parse(running.address), threads=2)
    try:
        await engine.ping()
        assert engine.api_version == NEWEST_API
    finally:
        engine.close()
        running.close()


async def test_an_engine_older_than_20_10_is_a_clear_error(socket_dir: Path) -> None:
    running = start(FakeEngine(newest="1.40", oldest="1.12"), socket_dir)
    engine = Engine(EngineAddress.parse(running.address), threads=2)
    try:
        with pytest.raises(EngineUnavailable, match=r"API 1\.40 at most.*1\.41 or newer"):
            await engine.ping()
        with pytest.raises(EngineUnavailable, match="upgrade Docker"):
            await engine.attach("c1")
    finally:
        engine.close()
        running.close()
    assert not any(line.startswith("POST") for line in running.engine.lines())


async def test_an_engine_upgraded_under_us_is_negotiated_again(socket_dir: Path) -> None:
    fake = FakeEngine(newest="1.41", oldest="1.12")
    running = start(fake, socket_dir)
    engine = Engine(EngineAddress.parse(running.address), threads=2)
    try:
        await engine.ping()
        assert engine.api_version == "1.41"
        fake.newest, fake.oldest = "1.52", "1.44"  # the engine now is Docker 29
        with pytest.raises(EngineUnavailable, match=r"client version 1\.41 is too old"):
            await engine.ping()
        await engine.ping()
        assert engine.api_version == "1.52"
        assert f"POST /v1.52/containers/c2{ATTACH_QUERY}" not in fake.lines()
        assert ATTACH_OUTPUT in await read_all(engine, "c2")
        assert f"POST /v1.52/containers/c2{ATTACH_QUERY}" in fake.lines()
    finally:
        engine.close()
        running.close()


async def test_no_engine_at_the_address_is_unavailable(socket_dir: Path) -> None:
    engine = Engine(EngineAddress.parse(f"unix://{socket_dir}/absent.sock"), threads=1)
    try:
        with pytest.raises(EngineUnavailable, match="unreachable"):
            await engine.ping()
        with pytest.raises(EngineUnavailable, match="unreachable"):
            await engine.attach("c1")
    finally:
        engine.close()


def test_negotiation_caps_at_what_we_know_and_refuses_what_is_too_old() -> None:
    assert negotiate("1.41") == "1.41"
    assert negotiate("1.44") == "1.44"
    assert negotiate("1.100") == NEWEST_API  # numbers, not strings: "1.100" > "1.52"
    with pytest.raises(EngineUnavailable, match=OLDEST_API):
        negotiate("1.9")
    with pytest.raises(EngineUnavailable, match="unreadable"):
        negotiate("latest")


@pytest.mark.parametrize(
    ("text", "socket_path", "host", "port"),
    [
        ("unix:///var/run/docker.sock", "/var/run/docker.sock", "", 0),
        ("tcp://127.0.0.1:2375", "", "127.0.0.1", 2375),
        ("tcp://engine.internal", "", "engine.internal", 2375),
        ("tcp://[::1]:2376", "", "::1", 2376),
    ],
)
def test_addresses_docker_accepts(text: str, socket_path: str, host: str, port: int) -> None:
    address = EngineAddress.parse(text)
    assert (address.socket_path, address.host, address.port) == (socket_path, host, port)
    assert address.tls is None


def test_tcp_with_tls_defaults_to_dockers_tls_port_and_unix_ignores_tls() -> None:
    tls = EngineTLS(verify=False)
    assert EngineAddress.parse("tcp://engine.internal", tls).port == 2376
    assert EngineAddress.parse("tcp://engine.internal", tls).tls == tls
    assert EngineAddress.parse("tcp://[::1]:2376", tls).base_url == "tcp://[::1]:2376"
    assert EngineAddress.parse("unix:///run/docker.sock", tls).tls is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("ssh://me@engine", "unsupported"),
        ("/var/run/docker.sock", "unsupported"),
        ("unix://", "names no socket"),
        ("tcp://:2375", "names no host"),
        ("tcp://engine:port", "Port"),
    ],
)
def test_addresses_we_cannot_use_are_refused_saying_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EngineAddress.parse(text)


async def test_docker_readiness_is_per_language_and_version(socket_dir: Path) -> None:
    images = {"cb-python:t1": "3.13.5", "cb-python-bookworm:t1": "3.11.2"}
    fake = FakeEngine(newest="1.52", oldest="1.44", images=images)
    running = start(fake, socket_dir)
    catalog = Catalog.load().only(["python", "c", "js"])
    settings = DockerSettings(
        docker_host=running.address,
        images=ImageNames("cb-", "t1"),
        language_runtimes=MappingProxyType({"c": "runsc"}),
    )
    backend = DockerBackend(catalog, settings)
    try:
        readiness = await backend.readiness()
        assert readiness["python"] is None
        assert readiness["python-bookworm"] is None
        assert readiness["c"] == "OCI runtime runsc is not registered with the engine"
        assert "runtime image missing" in str(readiness["javascript"])
        assert "cb-javascript:t1" in str(readiness["javascript"])
        assert "cb-javascript-bookworm:t1" in str(readiness["javascript-bookworm"])
        assert await backend.versions() == {"python": "3.13.5", "python-bookworm": "3.11.2"}
        assert await backend.packages() == {"python": {}, "python-bookworm": {}}  # no label
        fake.packages["cb-python:t1"] = '{"numpy":"2.2.4"}'
        fake.packages["cb-python-bookworm:t1"] = '{"numpy":"1.24.2"}'
        assert await backend.packages() == {
            "python": {"numpy": "2.2.4"},
            "python-bookworm": {"numpy": "1.24.2"},
        }
        fake.runtimes = ("runc", "runsc")
        fake.images["cb-c:t1"] = "14.2.0"
        assert (await backend.readiness())["c"] is None
        assert "cb-c-bookworm:t1" in str((await backend.readiness())["c-bookworm"])
    finally:
        await backend.close()
        running.close()
    reasons = await DockerBackend(catalog, settings).readiness()  # the engine gone
    assert set(reasons) == {
        f"{language}{version}"
        for language in ("c", "javascript", "python")
        for version in ("", "-bookworm")
    }
    assert all("unreachable" in str(reason) for reason in reasons.values())


def test_the_whole_sandbox_reason_is_derived_from_the_languages() -> None:
    assert unready_reason({"c": None, "python": None}) is None
    assert unready_reason({"c": "engine down", "python": "engine down"}) == "engine down"
    assert unready_reason({"c": None, "python": "no image", "go": "no image"}) == (
        "go: no image; python: no image"
    )


async def test_a_launch_given_up_during_the_create_removes_the_container_once_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    catalog = Catalog.load().only(["python"])
    backend = DockerBackend(catalog, DockerSettings())
    made = asyncio.Event()
    removed: list[str] = []

    async def slow_create(config: object) -> str:
        await made.wait()
        return "container-made-late"

    monkeypatch.setattr(backend._engine, "create", slow_create)
    monkeypatch.setattr(backend, "_schedule_teardown", lambda cid, attach: removed.append(cid))
    spec = catalog.resolve("python")
    launch = asyncio.ensure_future(backend.launch(spec, LIMITS, "e1"))
    await asyncio.sleep(0)  # the create is under way
    launch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await launch
    assert removed == []
    made.set()  # the engine finishes creating it after all
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert removed == ["container-made-late"]
