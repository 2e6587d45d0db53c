"""A stand-in Docker engine, for unit tests of how we reach and speak to one.

It answers the few endpoints the connection and readiness need as Docker
does: `/_ping` with its newest API version in the `API-Version` header,
`/version` as JSON, `/info` (its OCI runtimes), image inspect (its images),
and the attach upgrade (one multiplexed stdout frame, then EOF).
Like Docker, it refuses a versioned path outside its range with HTTP 400 and
"client version ... is too old". It serves a unix socket, or TCP on
127.0.0.1 behind TLS that requires a client certificate. Every request line
is recorded, with the common name of the client certificate it came with.
"""

from __future__ import annotations

import json
import re
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast

ATTACH_OUTPUT = b"hello from the fake engine\n"
_VERSIONED = re.compile(r"/v(\d+)\.(\d+)(/.*)")


@dataclass
class Seen:
    line: str  # e.g. "POST /v1.44/containers/abc/attach?stream=1..."
    client: str  # the client certificate's CN; "" without TLS


@dataclass
class FakeEngine:
    newest: str
    oldest: str
    runtimes: tuple[str, ...] = ("runc",)
    images: dict[str, str] = field(default_factory=dict)  # image name -> version label
    packages: dict[str, str] = field(default_factory=dict)  # image name -> packages label
    seen: list[Seen] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [item.line for item in self.seen]

    def refusal(self, major: int, minor: int) -> str | None:
        version = (major, minor)
        if version < _tuple(self.oldest):
            return (
                f"client version {major}.{minor} is too old. Minimum supported API version "
                f"is {self.oldest}, please upgrade your client to a newer version"
            )
        if version > _tuple(self.newest):
            return (
                f"client version {major}.{minor} is too new. "
                f"Maximum supported API version is {self.newest}"
            )
        return None


def _tuple(version: str) -> tuple[int, int]:
    major, _, minor = version.partition(".")
    return int(major), int(minor)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    engine: FakeEngine  # set on the subclass made per server

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: the test reads `engine.seen`

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer()

    def _client(self) -> str:
        if not isinstance(self.connection, ssl.SSLSocket):
            return ""
        peer = self.connection.getpeercert() or {}
        # ((("commonName", "x"),), ...): typeshed types the values loosely.
        subject = cast("tuple[tuple[tuple[str, str], ...], ...]", peer.get("subject", ()))
        for rdn in subject:
            for key, value in rdn:
                if key == "commonName":
                    return str(value)
        return "?"

    def _answer(self) -> None:
        self.engine.seen.append(Seen(f"{self.command} {self.path}", self._client()))
        path = self.path.split("?", 1)[0]
        versioned = _VERSIONED.fullmatch(path)
        if versioned:
            refused = self.engine.refusal(int(versioned[1]), int(versioned[2]))
            if refused:
                self._json(400, {"message": refused})
                return
            path = versioned[3]
        if path == "/_ping":
            self._reply(200, b"OK", "text/plain", {"API-Version": self.engine.newest})
        elif path == "/version":
            body = {"Version": "fake", "ApiVersion": self.engine.newest}
            self._json(200, {**body, "MinAPIVersion": self.engine.oldest})
        elif path == "/info":
            self._json(200, {"Runtimes": {name: {"path": name} for name in self.engine.runtimes}})
        elif path == "/containers/json":
            self._json(200, [])  # none of ours left behind
        elif path.startswith("/images/") and path.endswith("/json"):
            self._image(path.removeprefix("/images/").removesuffix("/json"))
        elif path.startswith("/containers/") and path.endswith("/attach"):
            self._attach()
        else:
            self._json(404, {"message": f"page not found: {path}"})

    def _image(self, name: str) -> None:
        version = self.engine.images.get(name)
        if version is None:
            self._json(404, {"message": f"No such image: {name}"})
        else:
            labels = {"io.codebeaker.version": version}
            if name in self.engine.packages:
                labels["io.codebeaker.packages"] = self.engine.packages[name]
            self._json(200, {"Id": f"sha256:{name}", "Config": {"Labels": labels}})

    def _attach(self) -> None:
        self.wfile.write(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        frame = b"\x01\x00\x00\x00" + len(ATTACH_OUTPUT).to_bytes(4, "big") + ATTACH_OUTPUT
        self.wfile.write(frame)
        self.wfile.flush()
        self.close_connection = True

    def _json(self, status: int, body: object) -> None:
        self._reply(status, json.dumps(body).encode(), "application/json")

    def _reply(
        self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TcpServer(ThreadingHTTPServer):
    daemon_threads = True


class Running:
    """A fake engine serving in a thread until `close`."""

    def __init__(self, engine: FakeEngine, server: socketserver.BaseServer, address: str) -> None:
        self.engine = engine
        self.address = address
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def _handler(engine: FakeEngine) -> type[_Handler]:
    return type("Handler", (_Handler,), {"engine": engine})


def serve_unix(engine: FakeEngine, socket_path: Path) -> Running:
    server = _UnixServer(str(socket_path), _handler(engine))
    return Running(engine, server, f"unix://{socket_path}")


def serve_tls(engine: FakeEngine, cert: Path, key: Path, client_ca: Path) -> Running:
    """On 127.0.0.1, TLS with `cert`, refusing clients without a certificate `client_ca` signed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(client_ca)
    server = _TcpServer(("127.0.0.1", 0), _handler(engine))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    port = server.server_address[1]
    return Running(engine, server, f"tcp://127.0.0.1:{port}")
