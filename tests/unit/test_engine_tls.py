"""An engine on tcp:// behind TLS, reached as Docker's client reaches it: the
certificates come from DOCKER_TLS_VERIFY / DOCKER_CERT_PATH, and both the
APIClient and the raw attach connection verify the engine and present our
client certificate. The certificates are made here with the `openssl` CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from codebeaker.runtimes.docker.connection import EngineAddress, EngineTLS
from codebeaker.runtimes.docker.engine import Engine
from codebeaker.runtimes.errors import EngineUnavailable
from tests.unit.fake_engine import ATTACH_OUTPUT, FakeEngine, Running, serve_tls

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}-key.pem"
    openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", f"/CN={name}",
    )  # fmt: skip
    return cert, key


def issue(ca: tuple[Path, Path], cert: Path, key: Path, name: str, extensions: str) -> None:
    request, extfile = cert.with_suffix(".csr"), cert.with_suffix(".ext")
    extfile.write_text(extensions + "\nbasicConstraints=CA:FALSE\n")
    openssl(
        "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", key, "-out", request, "-subj", f"/CN={name}",
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", request, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "1", "-extfile", extfile,
    )  # fmt: skip


@dataclass(frozen=True)
class Certificates:
    cert_path: Path  # a DOCKER_CERT_PATH: ca.pem (the engine's CA), cert.pem, key.pem
    server_cert: Path
    server_key: Path
    client_ca: Path  # what the engine trusts client certificates from


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    root = tmp_path_factory.mktemp("tls")
    ca = make_ca(root, "engine-ca")
    server_cert, server_key = root / "server.pem", root / "server-key.pem"
    issue(ca, server_cert, server_key, "engine", "subjectAltName=IP:127.0.0.1")
    cert_path = root / "client"
    cert_path.mkdir()
    shutil.copy(ca[0], cert_path / "ca.pem")
    issue(
        ca,
        cert_path / "cert.pem",
        cert_path / "key.pem",
        "codebeaker",
        "extendedKeyUsage=clientAuth",
    )
    return Certificates(cert_path, server_cert, server_key, ca[0])


@pytest.fixture
def engine_tls(certificates: Certificates) -> Iterator[Running]:
    running = serve_tls(
        FakeEngine(newest="1.52", oldest="1.44"),
        certificates.server_cert,
        certificates.server_key,
        certificates.client_ca,
    )
    yield running
    running.close()


def engine_for(running: Running, environ: dict[str, str]) -> Engine:
    return Engine(EngineAddress.parse(running.address, EngineTLS.from_env(environ)), threads=2)


async def test_control_calls_and_attach_go_over_verified_mutual_tls(
    engine_tls: Running, certificates: Certificates
) -> None:
    environ = {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(certificates.cert_path)}
    engine = engine_for(engine_tls, environ)
    try:
        await engine.ping()
        assert engine.api_version == "1.52"
        stream = await engine.attach("abc")
        try:
            assert ATTACH_OUTPUT in await stream.reader.read()
        finally:
            stream.close()
    finally:
        engine.close()
    by_line = {seen.line: seen.client for seen in engine_tls.engine.seen}
    assert by_line["GET /_ping"] == "codebeaker"  # negotiation, over the APIClient
    assert by_line["GET /v1.52/_ping"] == "codebeaker"
    attach = "POST /v1.52/containers/abc/attach?stream=1&stdin=1&stdout=1&stderr=1"
    assert by_line[attach] == "codebeaker"  # the raw connection presented it too


async def test_an_engine_whose_certificate_we_do_not_trust_is_refused(
    engine_tls: Running, certificates: Certificates, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    make_ca(tmp_path, "stranger")
    shutil.copy(tmp_path / "stranger.pem", other / "ca.pem")
    for name in ("cert.pem", "key.pem"):
        shutil.copy(certificates.cert_path / name, other / name)
    engine = engine_for(engine_tls, {"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(other)})
    try:
        with pytest.raises(EngineUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await engine.ping()
        engine.api_version = "1.52"  # as if negotiated: the attach must check on its own
        with pytest.raises(EngineUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await engine.attach("abc")
    finally:
        engine.close()
    assert engine_tls.engine.seen == []


async def test_plain_tcp_to_a_tls_engine_gets_no_answer(engine_tls: Running) -> None:
    engine = engine_for(engine_tls, {})
    try:
        with pytest.raises(EngineUnavailable):
            await engine.ping()
    finally:
        engine.close()
    assert engine_tls.engine.seen == []


def test_tls_settings_are_read_as_dockers_client_reads_them(
    certificates: Certificates, tmp_path: Path
) -> None:
    folder = str(certificates.cert_path)
    assert EngineTLS.from_env({"DOCKER_CERT_PATH": folder}) is None  # the path alone: no TLS
    verified = EngineTLS.from_env({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": folder})
    assert verified == EngineTLS(
        True,
        certificates.cert_path / "ca.pem",
        certificates.cert_path / "cert.pem",
        certificates.cert_path / "key.pem",
    )
    encrypted = EngineTLS.from_env({"DOCKER_TLS": "1", "DOCKER_CERT_PATH": folder})
    assert encrypted is not None and not encrypted.verify and encrypted.ca_cert is None
    home = {"DOCKER_TLS_VERIFY": "1", "HOME": str(tmp_path)}
    with pytest.raises(ValueError, match=r"\.docker\) has no ca\.pem"):
        EngineTLS.from_env(home)  # DOCKER_CERT_PATH defaults to ~/.docker
    (tmp_path / "ca.pem").write_text("x")
    (tmp_path / "cert.pem").write_text("x")
    with pytest.raises(ValueError, match=r"both cert\.pem and key\.pem"):
        EngineTLS.from_env({"DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": str(tmp_path)})
