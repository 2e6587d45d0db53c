"""TLS and mTLS end to end: the real server (over a fake sandbox), real certificates,
the SDK's clients and the `codebeaker` command as a process.

Certificates come from the `openssl` command (tests/certs.py). The server is
the in-process Application on this test's event loop, so blocking calls (the
sync SDK) run on a worker thread and the CLI as a subprocess.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest

from codebeaker.client import AsyncClient, Client, UnavailableError
from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig, parse_config
from tests.certs import Pki, make_pki
from tests.unit.fake_sandbox import FakeSandbox

T = TypeVar("T")
CLI = [sys.executable, "-m", "codebeaker.client"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@asynccontextmanager
async def serving(**settings: Any) -> AsyncIterator[str]:
    """The real server on 127.0.0.1:0 with these settings; yields its address."""
    config = ServerConfig().with_values(address="127.0.0.1:0", shutdown_grace=1.0, **settings)
    sandbox = FakeSandbox()
    app = Application(config, sandbox, Catalog.load())
    port = await app.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        sandbox.release()
        await app.stop()


def tls_server(pki: Pki, *, mtls: bool = False) -> dict[str, str]:
    settings = {"tls_cert": str(pki.server.cert), "tls_key": str(pki.server.key)}
    if mtls:
        settings["tls_client_ca"] = str(pki.ca.cert)
    return settings


async def blocking(function: Callable[[], T]) -> T:
    """Run a blocking SDK call off the loop the server runs on."""
    return await asyncio.to_thread(function)


def sync_languages(address: str, **connection: Any) -> set[str]:
    with Client(address, timeout=10, **connection) as client:
        return {runtime.language for runtime in client.runtimes()}


async def cli(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CODEBEAKER_")}
    process = await asyncio.create_subprocess_exec(
        *CLI,
        *map(str, args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_tls_serves_the_sync_and_async_sdk_and_the_cli(pki: Pki, tmp_path: Path) -> None:
    async with serving(**tls_server(pki)) as address:
        # The CA as a path (sync) and as bytes (async).
        assert "python" in await blocking(lambda: sync_languages(address, ca=pki.ca.cert))
        async with AsyncClient(address, ca=pki.ca.cert.read_bytes(), timeout=10) as client:
            result = await client.execute("python", "out over tls")
        assert result.stdout == b"over tls\n"

        code, out, err = await cli("runtimes", "--address", address, "--tls", "--ca", pki.ca.cert)
        assert (code, err) == (0, "")
        assert "python" in out
        program = tmp_path / "hello.py"
        program.write_text("out hello from the cli\n")
        code, out, err = await cli("run", program, "--address", address, "--ca", pki.ca.cert)
        assert (code, out, err) == (0, "hello from the cli\n", "")


async def test_a_plaintext_client_is_refused_by_a_tls_server(pki: Pki) -> None:
    async with serving(**tls_server(pki)) as address:
        with pytest.raises(UnavailableError) as caught:
            await blocking(lambda: sync_languages(address))
        async with AsyncClient(address, timeout=10) as client:
            with pytest.raises(UnavailableError):
                await client.runtimes()
        code, _, err = await cli("runtimes", "--address", address)
    assert caught.value.code == "UNAVAILABLE"
    assert code == 69
    assert err.startswith(f"codebeaker: service unavailable at {address}") and err.count("\n") == 1


async def test_a_tls_client_is_refused_by_a_plaintext_server(pki: Pki) -> None:
    async with serving() as address:
        with pytest.raises(UnavailableError):
            await blocking(lambda: sync_languages(address, ca=pki.ca.cert))
        assert "python" in await blocking(lambda: sync_languages(address))


async def test_a_server_certificate_the_client_does_not_trust_is_refused(pki: Pki) -> None:
    async with serving(**tls_server(pki)) as address:
        with pytest.raises(UnavailableError):
            await blocking(lambda: sync_languages(address, ca=pki.other_ca.cert))
        # The system's roots do not know our private CA either.
        with pytest.raises(UnavailableError):
            await blocking(lambda: sync_languages(address, tls=True))
        code, _, _ = await cli("runtimes", "--address", address, "--tls")
        assert code == 69


async def test_mtls_refuses_a_client_without_a_certificate_signed_by_its_ca(pki: Pki) -> None:
    async with serving(**tls_server(pki, mtls=True)) as address:
        with pytest.raises(UnavailableError):
            await blocking(lambda: sync_languages(address, ca=pki.ca.cert))
        stranger = {"cert": pki.stranger.cert, "key": pki.stranger.key}
        with pytest.raises(UnavailableError):
            await blocking(lambda: sync_languages(address, ca=pki.ca.cert, **stranger))
        async with AsyncClient(address, ca=pki.ca.cert, timeout=10) as client:
            with pytest.raises(UnavailableError):
                await client.execute("python", "out never")
        code, _, _ = await cli("runtimes", "--address", address, "--ca", pki.ca.cert)
        assert code == 69


async def test_mtls_serves_a_client_with_a_certificate(pki: Pki) -> None:
    mine = {"cert": pki.client.cert, "key": pki.client.key}
    async with serving(**tls_server(pki, mtls=True)) as address:
        assert "python" in await blocking(lambda: sync_languages(address, ca=pki.ca.cert, **mine))
        cert, key = pki.client.cert.read_bytes(), pki.client.key.read_bytes()
        async with AsyncClient(address, ca=pki.ca.cert, cert=cert, key=key, timeout=10) as client:
            result = await client.execute("python", "out mutual")
        assert result.stdout == b"mutual\n"
        code, out, err = await cli(
            "runtimes",
            "--address",
            address,
            "--ca",
            pki.ca.cert,
            "--cert",
            pki.client.cert,
            "--key",
            pki.client.key,
        )
        assert (code, err) == (0, "")
        assert "python" in out


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--ca", "/nonexistent/ca.pem"], "--ca: cannot read /nonexistent/ca.pem"),
        (["--tls", "--cert", "/nonexistent/me.pem", "--key", "k"], "--cert: cannot read"),
        (["--cert", "c.pem"], "--cert and --key go together"),
    ],
)
async def test_cli_refuses_unreadable_pem_files_as_a_usage_error(
    flags: list[str], problem: str
) -> None:
    # No server: the files are checked before any connection is tried.
    code, out, err = await cli("runtimes", "--address", "127.0.0.1:9", *flags)
    assert code == 2 and out == ""
    assert err.startswith(f"codebeaker: {problem}") and err.count("\n") == 1, err


async def test_cli_refuses_a_file_that_is_not_pem(tmp_path: Path) -> None:
    junk = tmp_path / "ca.pem"
    junk.write_text("not a certificate\n")
    code, _, err = await cli("runtimes", "--address", "127.0.0.1:9", "--ca", junk)
    assert code == 2
    assert err == f"codebeaker: --ca: {junk} is not PEM (no -----BEGIN line)\n"


@pytest.mark.parametrize(
    ("settings", "problem"),
    [
        ({"tls_cert": "server.pem"}, "tls_cert needs tls_key"),
        ({"tls_key": "server.key"}, "tls_key needs tls_cert"),
        ({"tls_client_ca": "ca.pem"}, "tls_client_ca .* needs tls_cert"),
        ({"tls_cert": "missing.pem", "tls_key": "server.key"}, "tls_cert: cannot read"),
        ({"tls_cert": "server.pem", "tls_key": "server.pem"}, "tls_key: .* is not PEM"),
        ({"keepalive_time": "0"}, "keepalive_time must be more than 0"),
        ({"keepalive_timeout": "-1"}, "keepalive_timeout must be more than 0"),
        ({"max_connection_age": "-1"}, "max_connection_age must be 0 or more"),
    ],
)
def test_server_refuses_a_bad_transport_setup_naming_the_setting(
    pki: Pki, settings: dict[str, str], problem: str
) -> None:
    folder = pki.server.cert.parent
    argv = []
    for name, value in settings.items():
        if name.startswith("tls_"):
            value = str(folder / value)
        argv += ["--" + name.replace("_", "-"), value]
    with pytest.raises(ValueError, match=problem):
        parse_config(argv, {})


def test_server_takes_its_tls_files_from_flags_or_the_environment(pki: Pki) -> None:
    env = {"CODEBEAKER_TLS_CERT": str(pki.server.cert), "CODEBEAKER_TLS_KEY": str(pki.server.key)}
    config = parse_config(["--tls-client-ca", str(pki.ca.cert)], env)
    assert config.service.tls_cert == str(pki.server.cert)
    assert config.service.tls_client_ca == str(pki.ca.cert)
