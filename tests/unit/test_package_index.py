"""The loopback package index (tests/package_index.py), checked with the real pip and npm.

pip runs with no configuration but its command line (this machine's pip.conf files and
PIP_* variables add other indexes and find-links), npm with a temporary HOME, cache and
user config; both get a proxy that refuses every connection for anything but 127.0.0.1,
so a request meant for elsewhere fails instead of leaving the machine.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.package_index import PackageIndex, normalize, semver_key

# Port 9 (discard) has no listener here: a proxied connection is refused at once.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def index(tmp_path: Path) -> Iterator[PackageIndex]:
    with PackageIndex(tmp_path / "index") as running:
        yield running


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET, without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


class Links(HTMLParser):
    """The <a> elements of a page: their attributes, entities decoded."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.anchors.append(dict(attrs))


def anchors(page: bytes) -> list[dict[str, str | None]]:
    parser = Links()
    parser.feed(page.decode())
    return parser.anchors


# -- the index itself --------------------------------------------------------------


def test_normalize_and_semver_order() -> None:
    assert normalize("Tiny_Tab..Extra-_x") == "tiny-tab-extra-x"
    ordered = sorted(
        ["1.10.0", "1.9.0", "1.10.0-rc.1", "1.10.0-rc.10", "1.10.0-rc.2", "1.10.0-alpha", "2.0.0"],
        key=semver_key,
    )
    assert ordered == [
        "1.9.0",
        "1.10.0-alpha",
        "1.10.0-rc.1",
        "1.10.0-rc.2",
        "1.10.0-rc.10",
        "1.10.0",
        "2.0.0",
    ]
    with pytest.raises(ValueError):
        semver_key("1.0")


def test_simple_pages_link_each_file_with_its_hash(index: PackageIndex) -> None:
    index.add_wheel("Tiny_Tab.Extra", "1.0", {"tiny_tab_extra/__init__.py": "X = 1\n"})
    index.add_wheel(
        "Tiny_Tab.Extra",
        "2.0",
        {"tiny_tab_extra/__init__.py": "X = 2\n"},
        requires_python=">=3.8,<4",
    )
    index.add_sdist("other", "0.1", {"setup.py": "raise SystemExit(1)\n"})
    base = index.pypi_url.removesuffix("/simple/")

    status, headers, page = fetch(index.pypi_url + "tiny-tab-extra/")
    assert status == 200
    assert headers["Content-Type"].startswith("text/html")
    assert int(headers["Content-Length"]) == len(page)
    assert b'data-requires-python="&gt;=3.8,&lt;4"' in page  # escaped in the HTML
    links = anchors(page)
    assert [link.get("data-requires-python") for link in links] == [None, ">=3.8,<4"]
    filenames = ["tiny_tab_extra-1.0-py3-none-any.whl", "tiny_tab_extra-2.0-py3-none-any.whl"]
    for link, filename in zip(links, filenames, strict=True):
        href = link["href"]
        assert href is not None
        url, _, fragment = href.partition("#")
        assert url == f"{base}/files/{filename}"
        status, headers, wheel = fetch(url)
        assert status == 200
        assert int(headers["Content-Length"]) == len(wheel)
        assert fragment == "sha256=" + hashlib.sha256(wheel).hexdigest()

    # Another spelling of the name is sent to the normalized page; an unknown one is 404.
    status, headers, _ = fetch(index.pypi_url + "Tiny_Tab.Extra/")
    assert (status, headers["Location"]) == (301, "/simple/tiny-tab-extra/")
    assert fetch(index.pypi_url + "nothing-here/")[0] == 404
    assert fetch(f"{base}/files/nothing-1.0-py3-none-any.whl")[0] == 404

    status, _, root = fetch(index.pypi_url)
    assert status == 200
    assert [link["href"] for link in anchors(root)] == ["/simple/other/", "/simple/tiny-tab-extra/"]
    [other] = anchors(fetch(index.pypi_url + "other/")[2])
    assert str(other["href"]).split("#")[0] == f"{base}/files/other-0.1.tar.gz"

    assert index.requested == [
        "/simple/tiny-tab-extra/",
        "/files/tiny_tab_extra-1.0-py3-none-any.whl",
        "/files/tiny_tab_extra-2.0-py3-none-any.whl",
        "/simple/Tiny_Tab.Extra/",
        "/simple/nothing-here/",
        "/files/nothing-1.0-py3-none-any.whl",
        "/simple/",
        "/simple/other/",
    ]


def test_wheel_holds_metadata_and_a_record_of_every_file(index: PackageIndex) -> None:
    index.add_wheel(
        "Tiny-Tab",
        "1.2",
        {"tinytab/__init__.py": "X = 1\n", "tinytab/data/table.txt": "a,b\n"},
        requires=["padkit>=1,<2", 'colorish; python_version >= "3.11"'],
        requires_python=">=3.11",
    )
    wheel_path = index.root / "files" / "tiny_tab-1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel_path) as wheel:
        contents = {name: wheel.read(name) for name in wheel.namelist()}
    dist_info = "tiny_tab-1.2.dist-info"
    assert set(contents) == {
        "tinytab/__init__.py",
        "tinytab/data/table.txt",
        f"{dist_info}/METADATA",
        f"{dist_info}/WHEEL",
        f"{dist_info}/RECORD",
    }
    metadata = Parser().parsestr(contents[f"{dist_info}/METADATA"].decode())
    assert metadata["Metadata-Version"] == "2.1"
    assert (metadata["Name"], metadata["Version"]) == ("Tiny-Tab", "1.2")
    assert metadata["Requires-Python"] == ">=3.11"
    assert metadata.get_all("Requires-Dist") == [
        "padkit>=1,<2",
        'colorish; python_version >= "3.11"',
    ]
    wheel_info = Parser().parsestr(contents[f"{dist_info}/WHEEL"].decode())
    assert (wheel_info["Root-Is-Purelib"], wheel_info["Tag"]) == ("true", "py3-none-any")

    rows = list(csv.reader(io.StringIO(contents[f"{dist_info}/RECORD"].decode())))
    assert {row[0] for row in rows} == set(contents)
    for path, digest, size in rows:
        if path == f"{dist_info}/RECORD":
            assert (digest, size) == ("", "")
            continue
        expected = base64.urlsafe_b64encode(hashlib.sha256(contents[path]).digest()).rstrip(b"=")
        assert digest == "sha256=" + expected.decode()
        assert int(size) == len(contents[path])


def test_packument_lists_every_version_with_dist(index: PackageIndex) -> None:
    for version in ["1.9.0", "1.10.0", "2.0.0-rc.1"]:
        index.add_npm("@cb/pad", version, {"index.js": f"module.exports = '{version}';\n"})
    index.add_npm(
        "@cb/pad",
        "1.0.0",
        {"lib/pad.js": "module.exports = 0;\n"},
        dependencies={"left": "^1.0.0"},
        scripts={"test": "true"},
    )

    # As npm asks for a scoped name: the slash escaped (either case).
    status, headers, body = fetch(index.npm_url + "@cb%2fpad")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert int(headers["Content-Length"]) == len(body)
    packument = json.loads(body)
    assert fetch(index.npm_url + "@cb%2Fpad")[2] == body
    assert packument["name"] == "@cb/pad"
    assert list(packument["versions"]) == ["1.0.0", "1.9.0", "1.10.0", "2.0.0-rc.1"]
    assert packument["dist-tags"] == {"latest": "1.10.0"}  # a release, by semver not text

    oldest = packument["versions"]["1.0.0"]
    assert oldest["dependencies"] == {"left": "^1.0.0"}
    assert oldest["scripts"] == {"test": "true"}
    assert "main" not in oldest  # no index.js
    for version, manifest in packument["versions"].items():
        dist = manifest["dist"]
        assert dist["tarball"] == f"{index.npm_url}@cb/pad/-/pad-{version}.tgz"
        status, headers, tarball = fetch(dist["tarball"])
        assert status == 200
        assert int(headers["Content-Length"]) == len(tarball)
        assert dist["shasum"] == hashlib.sha1(tarball).hexdigest()
        assert dist["integrity"] == (
            "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        )
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
            names = tar.getnames()
            assert all(name.startswith("package/") for name in names)
            package_json = tar.extractfile("package/package.json")
            assert package_json is not None
            generated = json.loads(package_json.read())
        assert generated == {k: v for k, v in manifest.items() if k not in ("dist", "_id")}
        if version != "1.0.0":
            assert generated["main"] == "index.js"
            assert "package/index.js" in names

    status, _, body = fetch(index.npm_url + "nothing-here")
    assert status == 404
    assert json.loads(body) == {"error": "Not found"}


def test_the_server_answers_while_another_request_hangs(
    index: PackageIndex, capfd: pytest.CaptureFixture[str]
) -> None:
    index.add_wheel("tinytab", "1.0", {"tinytab/__init__.py": "X = 1\n"})
    port = int(index.pypi_url.split(":")[2].split("/")[0])
    with socket.create_connection(("127.0.0.1", port)) as stalled:
        stalled.sendall(b"GET /simple/tinytab/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no end
        started = time.monotonic()
        assert fetch(index.pypi_url + "tinytab/")[0] == 200
        assert fetch(index.pypi_url + "missing/")[0] == 404
        assert time.monotonic() - started < 5
        # stop() ends the half-sent request's connection too, at once.
        index.stop()
        assert time.monotonic() - started < 5
        stalled.settimeout(5)
        assert stalled.recv(1024) == b""
    # Quiet: no line per request, none for the 404 or the connection cut off.
    assert capfd.readouterr().err == ""


# -- pip ---------------------------------------------------------------------------


def pip(index: PackageIndex, *args: str) -> subprocess.CompletedProcess[str]:
    """The venv's pip on `index` alone: no pip.conf, no PIP_* variable, no cache."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(("PIP_", "PYTHON"))}
    env["PIP_CONFIG_FILE"] = os.devnull  # no configuration file at all
    env.update(HTTP_PROXY=NOWHERE, HTTPS_PROXY=NOWHERE, NO_PROXY="127.0.0.1")
    command = [sys.executable, "-m", "pip", *args[:1], "--disable-pip-version-check"]
    command += ["--no-cache-dir", "--index-url", index.pypi_url, *args[1:]]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def downloads(index: PackageIndex) -> list[str]:
    return [path for path in index.requested if path.startswith("/files/")]


def test_pip_installs_a_wheel_and_the_highest_matching_dependency(
    index: PackageIndex, tmp_path: Path
) -> None:
    index.add_wheel(
        "tinytab",
        "1.0",
        {"tinytab/__init__.py": "from padkit import PAD\nX = 1\n"},
        requires=["padkit>=1.0,<2"],
    )
    index.add_wheel("tinytab", "1.1", {"tinytab/__init__.py": "X = 11\n"})
    for version in ["1.0", "1.5", "2.0"]:
        index.add_wheel("padkit", version, {"padkit/__init__.py": f"PAD = {version!r}\n"})
    # Higher and in range, but for a Python that does not exist: pip must pass it by.
    index.add_wheel("padkit", "1.9", {"padkit/__init__.py": "PAD = '1.9'\n"}, requires_python=">=4")
    target, report = tmp_path / "target", tmp_path / "report.json"

    done = pip(
        index,
        "install",
        "--target",
        str(target),
        "--only-binary=:all:",
        "--report",
        str(report),
        "tinytab==1.0",
    )
    assert done.returncode == 0, done.stderr
    installed = json.loads(report.read_text())["install"]
    assert sorted((i["metadata"]["name"], i["metadata"]["version"]) for i in installed) == [
        ("padkit", "1.5"),
        ("tinytab", "1.0"),
    ]
    assert all(
        i["download_info"]["url"].startswith(index.pypi_url.removesuffix("simple/"))
        for i in installed
    )
    # The 1.9 wheel was never fetched: data-requires-python ruled it out from the page.
    assert sorted(downloads(index)) == [
        "/files/padkit-1.5-py3-none-any.whl",
        "/files/tinytab-1.0-py3-none-any.whl",
    ]
    assert {"/simple/tinytab/", "/simple/padkit/"} <= set(index.requested)
    assert (target / "padkit-1.5.dist-info" / "METADATA").is_file()
    probe = subprocess.run(
        [sys.executable, "-c", "import tinytab; print(tinytab.X, tinytab.PAD)"],
        env={**os.environ, "PYTHONPATH": str(target)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.stdout == "1 1.5\n", probe.stderr


def test_pip_refuses_an_sdist_only_project_without_running_it(
    index: PackageIndex, tmp_path: Path
) -> None:
    marker = tmp_path / "setup-py-ran"
    setup_py = (
        "import pathlib\n"
        f"pathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from setuptools import setup\n"
        "setup(name='tinysrc', version='1.0', py_modules=[])\n"
    )
    index.add_sdist("tinysrc", "1.0", {"setup.py": setup_py})

    refused = pip(
        index, "install", "--target", str(tmp_path / "target"), "--only-binary=:all:", "tinysrc"
    )
    assert refused.returncode != 0
    assert "No matching distribution found for tinysrc" in refused.stderr, refused.stderr
    assert not marker.exists()
    assert downloads(index) == []  # the sdist was not even fetched
    assert "/simple/tinysrc/" in index.requested

    # The control: the same sdist, when pip is allowed to build it, runs setup.py.
    built = pip(
        index,
        "download",
        "--no-deps",
        "--no-binary=:all:",
        "--no-build-isolation",
        "--dest",
        str(tmp_path / "dest"),
        "tinysrc==1.0",
    )
    assert built.returncode == 0, built.stderr
    assert downloads(index) == ["/files/tinysrc-1.0.tar.gz"]
    assert marker.read_text() == "ran"


# -- npm ---------------------------------------------------------------------------


def npm_install(index: PackageIndex, prefix: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """npm install into `prefix` from `index` alone, with a temporary HOME and cache."""
    npm = shutil.which("npm")
    if npm is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but npm is missing: the package index's npm check must run")
        pytest.skip("npm is not installed")
    home = prefix.parent / f"{prefix.name}-home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.lower().startswith("npm_")}
    env.update(
        HOME=str(home),
        npm_config_cache=str(home / "cache"),
        npm_config_userconfig=str(home / ".npmrc"),
        npm_config_update_notifier="false",
        npm_config_proxy=NOWHERE,
        npm_config_https_proxy=NOWHERE,
        npm_config_noproxy="127.0.0.1",
    )
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
    command += ["--registry", index.npm_url, *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def add_tinyleft(index: PackageIndex, marker: Path) -> None:
    """tinyleft 1.0.0, 1.2.0 and 2.0.0 (1.2.0 with a postinstall that writes `marker`),
    depending on @cb/pad ^1 (1.0.0, 1.1.0, 2.0.0)."""
    for version in ["1.0.0", "1.1.0", "2.0.0"]:
        index.add_npm("@cb/pad", version, {"index.js": f"module.exports = '{version}';\n"})
    write_marker = f"require('fs').writeFileSync({json.dumps(str(marker))}, 'ran')"
    for version in ["1.0.0", "1.2.0", "2.0.0"]:
        index.add_npm(
            "tinyleft",
            version,
            {"index.js": f"module.exports = '{version} ' + require('@cb/pad');\n"},
            dependencies={"@cb/pad": "^1.0.0"},
            scripts={"postinstall": f"node -e {json.dumps(write_marker)}"},
        )


def test_npm_installs_from_the_index_without_running_scripts(
    index: PackageIndex, tmp_path: Path
) -> None:
    marker = tmp_path / "postinstall-ran"
    add_tinyleft(index, marker)
    prefix = tmp_path / "project"

    done = npm_install(index, prefix, "--ignore-scripts", "tinyleft@^1")
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    lock = json.loads((prefix / "package-lock.json").read_text())
    packages = lock["packages"]
    assert packages["node_modules/tinyleft"]["version"] == "1.2.0"
    assert packages["node_modules/@cb/pad"]["version"] == "1.1.0"
    assert packages["node_modules/tinyleft"]["resolved"].startswith(index.npm_url)
    packument = json.loads(fetch(index.npm_url + "tinyleft")[2])
    assert (
        packages["node_modules/tinyleft"]["integrity"]
        == (packument["versions"]["1.2.0"]["dist"]["integrity"])
    )
    tarballs = sorted(path for path in index.requested if path.endswith(".tgz"))
    assert [path.replace("%40", "@") for path in tarballs] == [
        "/npm/@cb/pad/-/pad-1.1.0.tgz",
        "/npm/tinyleft/-/tinyleft-1.2.0.tgz",
    ]
    assert "/npm/@cb%2fpad" in index.requested  # how npm asks for a scoped packument
    probe = subprocess.run(
        ["node", "-e", "console.log(require('tinyleft'))"],
        cwd=prefix,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.stdout == "1.2.0 1.1.0\n", probe.stderr


def test_npm_runs_the_postinstall_when_scripts_are_allowed(
    index: PackageIndex, tmp_path: Path
) -> None:
    """The control for the test above: the marker is written when npm runs scripts."""
    marker = tmp_path / "postinstall-ran"
    add_tinyleft(index, marker)

    done = npm_install(index, tmp_path / "project", "tinyleft@^1")
    assert done.returncode == 0, done.stderr
    assert marker.read_text() == "ran"
