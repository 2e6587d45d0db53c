"""Throw-away PKI for the transport tests, made with the `openssl` command.

Real certificates, as an operator would make them: a CA, a server certificate
for 127.0.0.1/localhost and client certificates, each signed by the CA, plus a
second CA nobody trusts, to prove that trust is checked rather than assumed.
"""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.tools import require

_DAYS = "2"
_CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class Pair:
    """A certificate and its private key, as PEM files."""

    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    ca: Pair
    server: Pair
    client: Pair
    other_ca: Pair
    stranger: Pair  # a client certificate signed by `other_ca`


def make_pki(directory: Path) -> Pki:
    openssl = require("openssl")
    ca = _authority(openssl, directory, "ca")
    other_ca = _authority(openssl, directory, "other-ca")
    server = _leaf(
        openssl,
        directory,
        "server",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _leaf(openssl, directory, "client", ca, "extendedKeyUsage=clientAuth\n")
    stranger = _leaf(openssl, directory, "stranger", other_ca, "extendedKeyUsage=clientAuth\n")
    return Pki(ca=ca, server=server, client=client, other_ca=other_ca, stranger=stranger)


def _authority(openssl: str, directory: Path, name: str) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    _run(
        openssl,
        "req",
        "-x509",
        *_CURVE,
        "-keyout",
        str(pair.key),
        "-out",
        str(pair.cert),
        "-days",
        _DAYS,
        "-subj",
        f"/CN=codebeaker test {name}",
    )
    return pair


def _leaf(openssl: str, directory: Path, name: str, ca: Pair, extensions: str) -> Pair:
    pair = Pair(directory / f"{name}.pem", directory / f"{name}.key")
    request = directory / f"{name}.csr"
    extfile = directory / f"{name}.ext"
    extfile.write_text(extensions)
    _run(
        openssl,
        "req",
        *_CURVE,
        "-keyout",
        str(pair.key),
        "-out",
        str(request),
        "-subj",
        f"/CN={name}",
    )
    _run(
        openssl,
        "x509",
        "-req",
        "-in",
        str(request),
        "-CA",
        str(ca.cert),
        "-CAkey",
        str(ca.key),
        "-set_serial",
        str(secrets.randbits(62) + 1),
        "-out",
        str(pair.cert),
        "-days",
        _DAYS,
        "-extfile",
        str(extfile),
    )
    return pair


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)
