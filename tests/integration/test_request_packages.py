"""Request-time packages on real sandboxes under runc and gVisor, installed from a
package index served on this machine's loopback (tests/package_index.py: nothing is
fetched from the internet): an allowed set installs once and imports, a repeat is a
cache hit that fetches nothing, refusals name the package, a source distribution is
never downloaded (so no setup.py runs anywhere), npm's install scripts never run, the
set is read-only in the sandbox and the program still has no network, and sessions
with packages share nothing with other sessions."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from codebeaker.client import Client
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import (
    SERVER_KINDS,
    Server,
    our_containers,
    run,
    start_server,
    stop_server,
)
from tests.package_index import PackageIndex
from tests.security.probes import PROBES

pytestmark = pytest.mark.docker
MARKER = "INSTALL-SCRIPT-RAN"
ALLOWLIST = """
[python]
cbtab = ">=1, <3"
cbevil = "*"
cbmissing = "*"

[javascript]
cbleft = "*"
"""


def _tab(version: str) -> dict[str, str]:
    return {"cbtab/__init__.py": f"from cbpad import pad\nVERSION = {version!r}\n"}


@pytest.fixture(scope="module")
def index() -> Iterator[PackageIndex]:
    with PackageIndex(Path(tempfile.mkdtemp(prefix="codebeaker-index-"))) as served:
        for version in ("1.0", "2.0", "3.0"):
            served.add_wheel("cbtab", version, _tab(version), requires=["cbpad>=1"])
        served.add_wheel(
            "cbpad", "1.5", {"cbpad/__init__.py": "def pad(s):\n    return f'[{s}]'\n"}
        )
        # Only a source distribution, whose setup.py would leave a marker if anything ran it.
        setup = f"open('/out/packages/{MARKER}', 'w').write('x')\nopen('/tmp/{MARKER}', 'w')\n"
        served.add_sdist("cbevil", "1.0", {"setup.py": setup})
        scripts = {
            hook: f"node -e \"require('fs').writeFileSync('{MARKER}-{hook}', 'x')\""
            for hook in ("preinstall", "install", "postinstall", "prepare")
        }
        served.add_npm(
            "cbleft",
            "1.2.0",
            {"index.js": "const pad = require('@cb/pad');\nmodule.exports = (s) => pad(s);\n"},
            dependencies={"@cb/pad": "^1.0.0"},
            scripts=scripts,
        )
        served.add_npm("@cb/pad", "1.1.0", {"index.js": "module.exports = (s) => `<${s}>`;\n"})
        yield served


@pytest.fixture(scope="module", params=["runc-host", "runsc-host"])
def server(request: pytest.FixtureRequest, index: PackageIndex) -> Iterator[Server]:
    state = Path(tempfile.mkdtemp(prefix="codebeaker-packages-"))
    allowlist = state / "allowlist.toml"
    allowlist.write_text(ALLOWLIST)
    running = start_server(
        *SERVER_KINDS[request.param],
        "--languages", "python,javascript",
        "--package-allowlist", str(allowlist),
        "--package-index", index.pypi_url,
        "--npm-registry", index.npm_url,
        "--package-install-timeout", "120",
        environ={"CODEBEAKER_STATE_DIR": str(state / "state")},
    )  # fmt: skip
    running.state_dir = state / "state"  # type: ignore[attr-defined]
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def stub(server: Server) -> pb_grpc.ExecutionServiceStub:
    return server.stub()


def asking(*packages: tuple[str, str]) -> list[pb.PackageRequest]:
    return [pb.PackageRequest(name=name, version=version) for name, version in packages]


def ok(result: pb.ExecutionResult) -> bytes:
    assert result.status == pb.EXECUTION_STATUS_OK, (result.message, result.stderr)
    return result.stdout


def refused(stub: pb_grpc.ExecutionServiceStub, *packages: tuple[str, str]) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        run(stub, "python", "print(1)", packages=asking(*packages))
    return caught.value


def test_an_allowed_set_installs_once_then_comes_from_the_cache(
    server: Server, stub: pb_grpc.ExecutionServiceStub, index: PackageIndex
) -> None:
    program = "import cbtab\nprint(cbtab.VERSION, cbtab.pad('x'), cbtab.__file__)"
    first = ok(run(stub, "python", program, packages=asking(("cbtab", ""))))
    # The newest the allow-list permits (3.0 is on the index, not allowed), with its dependency.
    assert first == b"2.0 [x] /opt/codebeaker/packages/cbtab/__init__.py\n"
    fetched = list(index.requested)
    again = ok(run(stub, "python", program, packages=asking(("cbtab", ""))))
    assert again == first and index.requested == fetched  # a hit: nothing fetched
    pinned = ok(run(stub, "python", program, packages=asking(("cbtab", "==1.0"))))
    assert pinned.startswith(b"1.0 [x]")
    # Served by reusable hosts of that set, each run in a fresh nested sandbox.
    package_hosts = set(our_containers(server.instance, "label=io.codebeaker.package-set"))
    reusable = set(our_containers(server.instance, "label=io.codebeaker.execution=host"))
    assert package_hosts and package_hosts <= reusable
    with_tab, listing = asking(("cbtab", "")), "import os; print(os.listdir('/tmp'))"
    fresh = ok(run(stub, "python", listing, packages=with_tab))
    ok(run(stub, "python", "open('/tmp/mine', 'w')", packages=with_tab))
    assert ok(run(stub, "python", listing, packages=with_tab)) == fresh == b"[]\n"
    # Without packages the program runs as ever (its pooled sandbox has none mounted).
    plain = run(stub, "python", "import cbtab")
    assert (
        plain.status == pb.EXECUTION_STATUS_RUNTIME_ERROR and b"ModuleNotFoundError" in plain.stderr
    )


def test_refusals_name_the_package(stub: pb_grpc.ExecutionServiceStub) -> None:
    for packages, words in (
        ((("numpy", ""),), ("spec.packages[0]", "'numpy'", "allow-list")),
        ((("cbtab", "3.0"),), ("spec.packages[0]", "3.0", "not allowed", ">=1, <3")),
        ((("cbtab", ""), ("CBTab", "")), ("spec.packages[1]", "twice")),
        ((("cbtab", "latest"),), ("spec.packages[0]", "latest")),
        ((("../etc", ""),), ("spec.packages[0]", "not a valid pip package name")),
    ):
        error = refused(stub, *packages)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        for word in words:
            assert word in (error.details() or ""), (word, error.details())
    # The allow-list is per language: every version of it lists the same.
    pythons = [
        r for r in stub.ListRuntimes(pb.ListRuntimesRequest()).runtimes if r.language == "python"
    ]
    assert len(pythons) == 2
    for python in pythons:
        assert {p.name: p.version for p in python.installable} == {
            "cbevil": "", "cbmissing": "", "cbtab": ">=1, <3"
        }  # fmt: skip


def test_a_source_distribution_is_never_fetched_nor_built(
    server: Server, stub: pb_grpc.ExecutionServiceStub, index: PackageIndex
) -> None:
    error = refused(stub, ("cbevil", ""))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    details = error.details() or ""
    assert (
        "installing cbevil for python failed" in details and "No matching distribution" in details
    )
    assert not any(path.endswith(".tar.gz") for path in index.requested)
    missing = refused(stub, ("cbmissing", ""))
    assert missing.code() == grpc.StatusCode.FAILED_PRECONDITION
    state: Path = server.state_dir  # type: ignore[attr-defined]
    assert not list(state.rglob(f"{MARKER}*")) and not Path(f"/tmp/{MARKER}").exists()


def test_npm_install_scripts_never_run(server: Server, stub: pb_grpc.ExecutionServiceStub) -> None:
    program = (
        "const fs = require('fs');\n"
        "const root = '/opt/codebeaker/packages/node_modules';\n"
        "const found = fs.readdirSync(root + '/cbleft').filter((f) => f.includes('RAN'));\n"
        "const curated = require('lodash').VERSION > '';\n"
        "console.log(require('cbleft')('x'), JSON.stringify(found), curated);"
    )
    out = ok(run(stub, "javascript", program, packages=asking(("cbleft", ""))))
    assert out == b"<x> [] true\n"  # its dependency came along; the curated ones still resolve
    state: Path = server.state_dir  # type: ignore[attr-defined]
    assert not list(state.rglob(f"{MARKER}*"))


def test_the_set_is_read_only_and_the_program_still_has_no_network(
    server: Server, stub: pb_grpc.ExecutionServiceStub, index: PackageIndex
) -> None:
    packages = asking(("cbtab", ""))
    write = (
        "import errno\n"
        "try:\n"
        "    open('/opt/codebeaker/packages/cbtab/evil.py', 'w')\n"
        "except OSError as error:\n"
        "    print(errno.errorcode[error.errno])\n"
        "for line in open('/proc/self/mountinfo'):\n"
        "    fields = line.split()\n"
        "    if fields[4] == '/opt/codebeaker/packages':\n"
        "        print(fields[5].split(','))\n"
    )
    refusal, options = ok(run(stub, "python", write, packages=packages)).decode().splitlines()
    # gVisor checks the folder's mode (not writable by the sandbox's uid) before the mount's.
    assert refusal in ("EROFS", "EACCES") and "'ro'" in options
    seen = json.loads(ok(run(stub, "python", PROBES["interfaces"]["python"], packages=packages)))
    assert seen["proc_net_dev"] == ["lo"]
    port = index.base_url.rsplit(":", 1)[1].rstrip("/")
    probe = PROBES["host_loopback"]["python"]
    args = [port, str(server.port), "9", "codebeaker-none"]
    report = json.loads(ok(run(stub, "python", probe, packages=packages, args=args)))
    assert (
        report[f"tcp 127.0.0.1:{port}"] != "ok" and report[f"tcp 127.0.0.1:{server.port}"] != "ok"
    )


def test_sessions_with_packages_share_nothing(server: Server) -> None:
    with (
        Client(server.address) as client,
        client.create_session("python", packages=["cbtab"]) as mine,
    ):
        assert dict(mine.info.packages) == {"cbtab": "2.0"}
        assert mine.run_code("import cbtab\nsecret = cbtab.pad('a')\nsecret").text == "'[a]'"
        with client.create_session("python") as other:
            assert b"NameError" in other.run_code("secret").stderr
            assert b"ModuleNotFoundError" in other.run_code("import cbtab").stderr
        assert mine.run_code("secret").text == "'[a]'"
