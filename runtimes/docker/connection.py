"""Where the Docker engine is, how to reach it, and which API version to speak.

Users point CodeBeaker at an engine the way they point Docker's own client
at one: DOCKER_HOST (`unix://` or `tcp://`) and, for TLS, DOCKER_TLS_VERIFY,
DOCKER_TLS and DOCKER_CERT_PATH (`ca.pem`, `cert.pem`, `key.pem`). We talk to
the engine two ways, the `docker` package's APIClient for control calls and
a raw asyncio connection for the attach stream, and both are built from the
one `EngineAddress` here, so they cannot disagree about where or how.

The API version is negotiated, never pinned: Docker 20.10 speaks at most
1.41, while Docker 29 refuses anything below 1.44. We speak the engine's
newest version up to the newest we have read the changelog against.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import docker.tls

from codebeaker.runtimes.errors import EngineUnavailable

OLDEST_API = "1.41"
"""Docker 20.10's API, the oldest we run against (the one our machines have)."""
NEWEST_API = "1.52"
"""Docker 29.0's API, the newest whose changes we checked against what we send
and read (image inspect: 1.45 drops ContainerConfig, later versions may leave
an unset Labels out; we read only Config.Labels and allow it to be absent).
A newer engine still accepts it, and is spoken to at this one."""
PLAIN_PORT = 2375
TLS_PORT = 2376


def api_tuple(version: str) -> tuple[int, int]:
    """'1.44' -> (1, 44), so versions compare as numbers, not strings."""
    major, dot, minor = version.strip().partition(".")
    if not dot or not major.isdigit() or not minor.isdigit():
        raise EngineUnavailable(f"the Docker engine reports an unreadable API version {version!r}")
    return int(major), int(minor)


def negotiate(engine_newest: str) -> str:
    """The API version to speak to an engine whose newest is `engine_newest`."""
    chosen = min(api_tuple(engine_newest), api_tuple(NEWEST_API))
    if chosen < api_tuple(OLDEST_API):
        raise EngineUnavailable(
            f"the Docker engine speaks API {engine_newest} at most; CodeBeaker needs "
            f"{OLDEST_API} or newer (Docker 20.10 or later): upgrade Docker"
        )
    return f"{chosen[0]}.{chosen[1]}"


@dataclass(frozen=True)
class EngineTLS:
    """TLS to a tcp:// engine, as Docker's client reads it from its variables."""

    verify: bool  # check the engine's certificate against ca_cert (DOCKER_TLS_VERIFY)
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> EngineTLS | None:
        """None unless DOCKER_TLS_VERIFY or DOCKER_TLS is set (non-empty, as Docker reads
        them); a ValueError naming the variable when a file it needs is missing."""
        verify = bool(environ.get("DOCKER_TLS_VERIFY"))
        if not verify and not environ.get("DOCKER_TLS"):
            return None
        home = Path(environ.get("HOME") or Path.home())
        folder = Path(environ.get("DOCKER_CERT_PATH") or home / ".docker")
        ca, cert, key = (folder / name for name in ("ca.pem", "cert.pem", "key.pem"))
        if verify and not ca.is_file():
            raise ValueError(
                f"DOCKER_TLS_VERIFY is set but DOCKER_CERT_PATH ({folder}) has no ca.pem"
            )
        if cert.is_file() != key.is_file():
            raise ValueError(f"DOCKER_CERT_PATH ({folder}) must hold both cert.pem and key.pem")
        pair = cert.is_file()
        return cls(verify, ca if verify else None, cert if pair else None, key if pair else None)

    def ssl_context(self) -> ssl.SSLContext:
        """The context of the raw attach connection: the same checks as the APIClient's."""
        if self.verify:
            context = ssl.create_default_context(cafile=str(self.ca_cert))
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.client_cert and self.client_key:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def docker_tls(self) -> docker.tls.TLSConfig:
        pair = (str(self.client_cert), str(self.client_key)) if self.client_cert else None
        ca = str(self.ca_cert) if self.ca_cert else None
        return docker.tls.TLSConfig(client_cert=pair, ca_cert=ca, verify=self.verify)


@dataclass(frozen=True)
class EngineAddress:
    """A parsed DOCKER_HOST: a unix socket path, or a TCP host and port (TLS or not)."""

    text: str
    socket_path: str = ""
    host: str = ""
    port: int = 0
    tls: EngineTLS | None = None

    @classmethod
    def parse(cls, text: str, tls: EngineTLS | None = None) -> EngineAddress:
        """A ValueError says what is wrong; TLS applies to tcp:// only, as in Docker."""
        url = urlsplit(text)
        if url.scheme == "unix":
            if not url.path:
                raise ValueError(f"{text!r} names no socket (e.g. unix:///var/run/docker.sock)")
            return cls(text, socket_path=url.path)
        if url.scheme in ("tcp", "http"):
            port = url.port  # a ValueError of its own when it is not a number
            if not url.hostname:
                raise ValueError(f"{text!r} names no host (e.g. tcp://127.0.0.1:2376)")
            secure = tls if url.scheme == "tcp" else None
            default = TLS_PORT if secure else PLAIN_PORT
            return cls(text, host=url.hostname, port=port or default, tls=secure)
        raise ValueError(
            f"unsupported Docker engine address {text!r}: use unix:///path/to/docker.sock "
            "or tcp://host:port (with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH for TLS)"
        )

    @property
    def base_url(self) -> str:
        """The address as the `docker` package wants it (it adds https for TLS)."""
        if self.socket_path:
            return f"unix://{self.socket_path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port}"

    async def connect(
        self, context: ssl.SSLContext | None
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A raw stream to the engine; `context` is this address's `tls.ssl_context()`."""
        if self.socket_path:
            return await asyncio.open_unix_connection(self.socket_path)
        if context is not None:
            return await asyncio.open_connection(
                self.host, self.port, ssl=context, server_hostname=self.host
            )
        return await asyncio.open_connection(self.host, self.port)
