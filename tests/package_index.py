"""A package index for tests: PyPI's "simple" API and an npm registry, on 127.0.0.1.

Request-time packages are installed by pip and npm pointed at an index; tests must
never reach one off this machine, so they serve their own. `PackageIndex` builds
real distributions on disk (pure wheels with METADATA, WHEEL and a hashed RECORD;
sdists; npm tarballs under `package/`) and serves them from a thread:

- `GET /simple/` lists every project, `GET /simple/<normalized-name>/` (PEP 503)
  has one link per file, `#sha256=` and `data-requires-python` on each; another
  spelling of a known name is redirected to its normalized page, an unknown one is 404.
- `GET /files/<file>` is a wheel or sdist.
- `GET /npm/<name>` (a scoped name as npm sends it: `/npm/@scope%2fname`) is the
  packument: every version added, `dist-tags.latest`, each version's `dist` with
  the tarball's absolute URL, `shasum` (sha1) and `integrity` (sha512).
- `GET /npm/<name>/-/<file>.tgz` is a tarball.

Distributions may be added before or after `start()`; pages are made per request.
`requested` is every path asked for, in order, so a test can assert what a tool
fetched (or that it fetched nothing). The server answers requests concurrently and
logs nothing.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import gzip
import hashlib
import html
import io
import json
import re
import shutil
import socket
import socketserver
import sys
import tarfile
import threading
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, unquote, urlsplit

# PEP 508 names, and the npm names the registry accepts (lowercase, optional @scope/).
PYPI_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)
NPM_NAME = re.compile(r"^(@[a-z0-9~-][a-z0-9._~-]*/)?[a-z0-9~-][a-z0-9._~-]*$")
SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)
# Archive members get a fixed time, so the same input gives the same bytes and hashes.
EPOCH_1980 = (1980, 1, 1, 0, 0, 0)
TAR_MTIME = 315532800  # 1980-01-01T00:00:00Z


def normalize(name: str) -> str:
    """PEP 503: lowercase, every run of -, _ and . becomes one -."""
    return re.sub(r"[-_.]+", "-", name).lower()


def semver_key(version: str) -> tuple[Any, ...]:
    """Semantic Versioning 2.0 precedence: a release above its prereleases, numeric
    identifiers below alphanumeric ones and compared as numbers; build metadata ignored."""
    match = SEMVER.match(version)
    if match is None:
        raise ValueError(f"not a semantic version: {version!r}")
    major, minor, patch, pre = match.groups()
    if pre is None:
        return (int(major), int(minor), int(patch), 1, ())
    identifiers = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split("."))
    return (int(major), int(minor), int(patch), 0, identifiers)


def _member_path(path: str) -> str:
    """A file's path inside an archive: relative, '/'-separated, no '..'."""
    pure = PurePosixPath(path)
    if not path or pure.is_absolute() or ".." in pure.parts or "\\" in path:
        raise ValueError(f"not a relative path inside a package: {path!r}")
    return pure.as_posix()


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _tar_gz(members: Mapping[str, bytes]) -> bytes:
    """A gzip tar of regular files (mode 0644), the same bytes for the same members."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = TAR_MTIME
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(frozen=True)
class _Dist:
    filename: str
    sha256: str
    requires_python: str | None


@dataclass
class _Project:
    name: str  # as first added
    dists: list[_Dist] = field(default_factory=list)


@dataclass(frozen=True)
class _NpmVersion:
    manifest: dict[str, Any]
    tarball_path: str  # the URL path on this server, unescaped
    shasum: str
    integrity: str


class PackageIndex:
    """Serves a PEP 503 simple index and an npm registry over HTTP on 127.0.0.1 (a thread)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._dist_dir = root / "files"
        self._npm_dir = root / "npm"
        self._dist_dir.mkdir(parents=True, exist_ok=True)
        self._npm_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._projects: dict[str, _Project] = {}
        self._files: dict[str, Path] = {}  # file name -> path, served at /files/<name>
        self._packages: dict[str, dict[str, _NpmVersion]] = {}
        self._tarballs: dict[str, Path] = {}  # URL path -> path
        self._requested: list[str] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._server is not None:
            raise RuntimeError("the package index is already running")
        server = _Server(self)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"package-index-{server.server_port}",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        server.shutdown()  # serve_forever returns: no new connections are taken
        server.stopping = True  # a request still being read is not answered
        server.close_connections()  # idle keep-alive connections end now
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """http://127.0.0.1:PORT (no trailing slash); only while running."""
        if self._server is None:
            raise RuntimeError("the package index is not running: call start() first")
        return f"http://127.0.0.1:{self._server.server_port}"

    @property
    def pypi_url(self) -> str:
        """What pip's --index-url takes."""
        return f"{self.base_url}/simple/"

    @property
    def npm_url(self) -> str:
        """What npm's --registry takes."""
        return f"{self.base_url}/npm/"

    @property
    def requested(self) -> list[str]:
        """Every path requested so far (as sent, with any query), in order."""
        with self._lock:
            return list(self._requested)

    # -- PyPI ---------------------------------------------------------------------

    def add_wheel(
        self,
        name: str,
        version: str,
        files: Mapping[str, str],
        requires: Sequence[str] = (),
        requires_python: str | None = None,
    ) -> None:
        """A pure wheel <dist>-<version>-py3-none-any.whl of `files` (paths inside the
        wheel), with its dist-info: METADATA (Requires-Dist per `requires`), WHEEL and
        RECORD (every file's sha256 and size)."""
        stem = self._dist_stem(name, version)
        dist_info = f"{stem}.dist-info"
        metadata = [
            "Metadata-Version: 2.1",
            f"Name: {name}",
            f"Version: {version}",
        ]
        if requires_python is not None:
            metadata.append(f"Requires-Python: {requires_python}")
        metadata += [f"Requires-Dist: {requirement}" for requirement in requires]
        wheel = [
            "Wheel-Version: 1.0",
            "Generator: codebeaker-tests",
            "Root-Is-Purelib: true",
            "Tag: py3-none-any",
        ]
        members: dict[str, bytes] = {}
        for path, text in files.items():
            member = _member_path(path)
            if member.split("/")[0] == dist_info:
                raise ValueError(f"{path!r}: the dist-info directory is generated")
            members[member] = text.encode()
        members[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
        members[f"{dist_info}/WHEEL"] = ("\n".join(wheel) + "\n").encode()
        record = io.StringIO()
        writer = csv.writer(record, lineterminator="\n")
        for member, data in members.items():
            writer.writerow([member, _record_hash(data), len(data)])
        writer.writerow([f"{dist_info}/RECORD", "", ""])
        members[f"{dist_info}/RECORD"] = record.getvalue().encode()

        archive = io.BytesIO()
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as wheel_zip:
            for member, data in members.items():
                info = zipfile.ZipInfo(member, date_time=EPOCH_1980)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                wheel_zip.writestr(info, data)
        self._add_dist(name, f"{stem}-py3-none-any.whl", archive.getvalue(), requires_python)

    def add_sdist(self, name: str, version: str, files: Mapping[str, str]) -> None:
        """A source distribution <name>-<version>.tar.gz only: `files` (e.g. a setup.py)
        under its top directory, with a PKG-INFO."""
        stem = self._dist_stem(name, version)
        members = {
            f"{stem}/PKG-INFO": (
                f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            ).encode()
        }
        for path, text in files.items():
            members[f"{stem}/{_member_path(path)}"] = text.encode()
        self._add_dist(name, f"{stem}.tar.gz", _tar_gz(members), None)

    @staticmethod
    def _dist_stem(name: str, version: str) -> str:
        """<name>-<version> as distribution file names spell it (the normalized name
        with '_' for '-', '-' in the version as '_')."""
        if not PYPI_NAME.match(name):
            raise ValueError(f"not a valid project name: {name!r}")
        if not version or not re.fullmatch(r"[A-Za-z0-9.+!_-]+", version):
            raise ValueError(f"not a valid version: {version!r}")
        return f"{normalize(name).replace('-', '_')}-{version.replace('-', '_')}"

    def _add_dist(self, name: str, filename: str, data: bytes, requires_python: str | None) -> None:
        with self._lock:
            if filename in self._files:
                raise ValueError(f"{filename} was already added")
            path = self._dist_dir / filename
            path.write_bytes(data)
            self._files[filename] = path
            project = self._projects.setdefault(normalize(name), _Project(name))
            dist = _Dist(filename, hashlib.sha256(data).hexdigest(), requires_python)
            project.dists.append(dist)

    # -- npm ----------------------------------------------------------------------

    def add_npm(
        self,
        name: str,
        version: str,
        files: Mapping[str, str],
        dependencies: Mapping[str, str] | None = None,
        scripts: Mapping[str, str] | None = None,
    ) -> None:
        """A tarball <name>-<version>.tgz of `files` under package/, with a package.json
        made from name, version, dependencies, scripts (and "main" when there is an
        index.js); the packument at <npm_url><name> lists it."""
        if not NPM_NAME.match(name) or len(name) > 214:
            raise ValueError(f"not a valid npm package name: {name!r}")
        semver_key(version)  # or ValueError
        manifest: dict[str, Any] = {"name": name, "version": version}
        if "index.js" in files:
            manifest["main"] = "index.js"
        if dependencies:
            manifest["dependencies"] = dict(dependencies)
        if scripts:
            manifest["scripts"] = dict(scripts)
        members: dict[str, bytes] = {
            "package/package.json": (json.dumps(manifest, indent=2) + "\n").encode()
        }
        for path, text in files.items():
            member = _member_path(path)
            if member == "package.json":
                raise ValueError("package.json is generated from the arguments")
            members[f"package/{member}"] = text.encode()
        data = _tar_gz(members)

        # As the public registry spells it: /@scope/name/-/name-1.0.0.tgz.
        basename = name.rpartition("/")[2]
        tarball_path = f"/npm/{name}/-/{basename}-{version}.tgz"
        stored = self._npm_dir / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
        entry = _NpmVersion(
            manifest=manifest,
            tarball_path=tarball_path,
            shasum=hashlib.sha1(data).hexdigest(),
            integrity="sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode(),
        )
        with self._lock:
            versions = self._packages.setdefault(name, {})
            if version in versions:
                raise ValueError(f"{name}@{version} was already added")
            stored.write_bytes(data)
            versions[version] = entry
            self._tarballs[tarball_path] = stored

    # -- pages --------------------------------------------------------------------

    def _root_page(self) -> bytes:
        with self._lock:
            names = sorted(self._projects)
        links = "".join(f'<a href="/simple/{n}/">{html.escape(n)}</a><br>\n' for n in names)
        return _html("Simple index", links)

    def _project_page(self, normalized: str) -> bytes | None:
        with self._lock:
            project = self._projects.get(normalized)
            dists = list(project.dists) if project else None
        if dists is None:
            return None
        links = []
        for dist in dists:
            href = f"{self.base_url}/files/{quote(dist.filename)}#sha256={dist.sha256}"
            attributes = f'href="{html.escape(href)}"'
            if dist.requires_python is not None:
                attributes += f' data-requires-python="{html.escape(dist.requires_python)}"'
            links.append(f"<a {attributes}>{html.escape(dist.filename)}</a><br>\n")
        return _html(f"Links for {normalized}", "".join(links))

    def _packument(self, name: str) -> bytes | None:
        with self._lock:
            versions = dict(self._packages.get(name, {}))
        if not versions:
            return None
        ordered = sorted(versions, key=semver_key)
        # The highest release; only when there is none, the highest prerelease.
        releases = [version for version in ordered if semver_key(version)[3] == 1]
        latest = (releases or ordered)[-1]
        document = {
            "_id": name,
            "name": name,
            "dist-tags": {"latest": latest},
            "versions": {
                version: {
                    **versions[version].manifest,
                    "_id": f"{name}@{version}",
                    "dist": {
                        "tarball": self.base_url + quote(versions[version].tarball_path, safe="/@"),
                        "shasum": versions[version].shasum,
                        "integrity": versions[version].integrity,
                    },
                }
                for version in ordered
            },
        }
        return json.dumps(document, indent=2).encode()

    # -- requests (called on the server's threads) --------------------------------

    def _record(self, path: str) -> None:
        with self._lock:
            self._requested.append(path)

    def _route(self, raw_path: str) -> _Answer:
        path = urlsplit(raw_path).path
        if path == "/simple/":
            return _Answer.page(self._root_page(), "text/html; charset=utf-8")
        if path.startswith("/simple/"):
            asked = unquote(path[len("/simple/") :]).rstrip("/")
            normalized = normalize(asked)
            page = self._project_page(normalized)
            if page is None or "/" in asked:
                return _Answer.not_found()
            if path != f"/simple/{normalized}/":
                return _Answer.redirect(f"/simple/{normalized}/")
            return _Answer.page(page, "text/html; charset=utf-8")
        if path.startswith("/files/"):
            with self._lock:
                stored = self._files.get(unquote(path[len("/files/") :]))
            return _Answer.file(stored) if stored else _Answer.not_found()
        if path.startswith("/npm/"):
            unescaped = unquote(path)
            with self._lock:
                stored = self._tarballs.get(unescaped)
            if stored is not None:
                return _Answer.file(stored)
            packument = self._packument(unescaped[len("/npm/") :])
            if packument is None:
                return _Answer.json_not_found()
            return _Answer.page(packument, "application/json")
        return _Answer.not_found()


def _html(title: str, body: str) -> bytes:
    return (
        "<!DOCTYPE html>\n<html>\n<head>\n"
        '<meta name="pypi:repository-version" content="1.0">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    ).encode()


@dataclass(frozen=True)
class _Answer:
    status: HTTPStatus
    content_type: str = "text/plain; charset=utf-8"
    body: bytes = b""
    path: Path | None = None  # a file's content instead of body
    location: str | None = None

    @classmethod
    def page(cls, body: bytes, content_type: str) -> _Answer:
        return cls(HTTPStatus.OK, content_type, body)

    @classmethod
    def file(cls, path: Path) -> _Answer:
        return cls(HTTPStatus.OK, "application/octet-stream", path=path)

    @classmethod
    def redirect(cls, location: str) -> _Answer:
        return cls(HTTPStatus.MOVED_PERMANENTLY, location=location)

    @classmethod
    def not_found(cls) -> _Answer:
        return cls(HTTPStatus.NOT_FOUND, body=b"not found\n")

    @classmethod
    def json_not_found(cls) -> _Answer:
        return cls(HTTPStatus.NOT_FOUND, "application/json", b'{"error":"Not found"}\n')


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as pip and npm use it
    timeout = 60  # an idle connection is closed after this long
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        if self.server.stopping:
            self.close_connection = True
            return
        index = self.server.index
        index._record(self.path)
        answer = index._route(self.path)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        if answer.location is not None:
            self.send_header("Location", answer.location)
        if answer.path is None:
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if not head:
                self.wfile.write(answer.body)
            return
        with answer.path.open("rb") as content:
            self.send_header("Content-Length", str(answer.path.stat().st_size))
            self.end_headers()
            if not head:
                shutil.copyfileobj(content, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: no line per request (or per error) on stderr."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, index: PackageIndex) -> None:
        self.index = index
        self.stopping = False
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look the address up (socket.getfqdn): no DNS here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = "127.0.0.1"
        self.server_port = int(self.socket.getsockname()[1])

    def track(self, connection: socket.socket, open_: bool) -> None:
        with self._connections_lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):  # already gone
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hung up (or stop() ending its connection) is not an error; a bug
        # in the index still prints its traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)
