"""Request-time packages through the in-process server over the FakeSandbox: the
allow-list refuses with rich details, a server without installer fails the install,
one with a (fake) installer mounts the set, ListRuntimes lists what is installable,
a malformed allow-list stops `codebeaker serve`, and sessions are checked too."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig, check, parse_config
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc
from tests.unit.conftest import Running, start_server
from tests.unit.fake_agent import FakeSessionBackend
from tests.unit.fake_installer import FakeInstaller
from tests.unit.fake_sandbox import FakeSandbox

ALLOWED = """
[python]
tabulate = ">=0.9, <1"
six = "*"

[javascript]
left-pad = "1.3.0"
"""


@dataclass
class Refusal:
    code: grpc.StatusCode
    message: str
    reason: str
    violations: list[tuple[str, str]]


def refusal(error: BaseException) -> Refusal:
    """The status and its google.rpc details, read as any caller reads them."""
    assert isinstance(error, aio.AioRpcError), error
    status = rpc_status.from_call(error)
    assert status is not None, "no grpc-status-details-bin trailer"
    reason, violations = "", []
    for packed in status.details:
        if packed.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            packed.Unpack(info)
            reason = info.reason
        elif packed.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            packed.Unpack(bad)
            violations += [(v.field, v.description) for v in bad.field_violations]
    return Refusal(error.code(), status.message, reason, violations)


@pytest.fixture
def allowlist(tmp_path: Path) -> Path:
    path = tmp_path / "packages.toml"
    path.write_text(ALLOWED)
    return path


@pytest.fixture
def listed(config: ServerConfig, allowlist: Path) -> ServerConfig:
    return config.with_values(package_allowlist=str(allowlist))


@pytest.fixture
async def served(listed: ServerConfig) -> AsyncIterator[Running]:
    server = await start_server(listed, FakeSandbox())
    yield server
    await server.channel.close()
    await server.app.stop()


@dataclass
class Installing:
    app: Application
    sandbox: FakeSandbox
    installer: FakeInstaller
    stub: pb_grpc.ExecutionServiceAsyncStub
    sessions: spb_grpc.SessionServiceAsyncStub


@pytest.fixture
async def installing(listed: ServerConfig) -> AsyncIterator[Installing]:
    """A server with an installer (a fake) and sessions (over fakes)."""
    sandbox, installer = FakeSandbox(), FakeInstaller(versions={"tabulate": "0.9.0"})
    app = Application(
        listed.with_values(session_spares=0),
        sandbox,
        Catalog.load(),
        FakeSessionBackend(),
        installer=installer,
    )
    port = await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    yield Installing(
        app,
        sandbox,
        installer,
        pb_grpc.ExecutionServiceStub(channel),
        spb_grpc.SessionServiceStub(channel),
    )
    await channel.close()
    await app.stop()


def holds(folder: str, name: str) -> bool:
    return Path(folder, name).is_file()


def spec(*packages: pb.PackageRequest, language: str = "python") -> pb.ExecutionSpec:
    return pb.ExecutionSpec(language=language, source=b"out hi", packages=list(packages))


def package(name: str, version: str = "") -> pb.PackageRequest:
    return pb.PackageRequest(name=name, version=version)


async def refused(stub: pb_grpc.ExecutionServiceAsyncStub, spec_: pb.ExecutionSpec) -> Refusal:
    with pytest.raises(aio.AioRpcError) as caught:
        await stub.Execute(pb.ExecuteRequest(spec=spec_))
    return refusal(caught.value)


# Execute.


async def test_a_package_not_on_the_list_is_invalid_argument_naming_it(served: Running) -> None:
    error = await refused(served.stub, spec(package("tabulate"), package("numpy")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "PACKAGE_NOT_ALLOWED"
    ((field, description),) = error.violations
    assert field == "spec.packages[1]"
    assert "'numpy'" in description and "six, tabulate" in description
    assert error.message.startswith("spec.packages[1]: package 'numpy' is not on")
    assert served.sandbox.jobs == []  # refused before anything ran


async def test_the_first_package_is_named_spec_packages_0(served: Running) -> None:
    error = await refused(served.stub, spec(package("numpy")))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PACKAGE_NOT_ALLOWED")
    assert [field for field, _ in error.violations] == ["spec.packages[0]"]


async def test_a_version_outside_the_lists_range_is_not_allowed(served: Running) -> None:
    error = await refused(served.stub, spec(package("tabulate", "1.2")))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PACKAGE_NOT_ALLOWED")
    assert "allowed: >=0.9, <1" in error.violations[0][1]


async def test_a_malformed_version_is_value_invalid(served: Running) -> None:
    error = await refused(served.stub, spec(package("tabulate", "~=0.9")))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "VALUE_INVALID")
    assert error.violations[0][0] == "spec.packages[0]"


async def test_a_language_without_installer_cannot_ask(served: Running) -> None:
    error = await refused(served.stub, spec(package("tabulate"), language="c"))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "FIELD_UNSUPPORTED")
    assert error.violations[0][0] == "spec.packages"


async def test_without_a_list_no_request_may_ask(running: Running) -> None:
    error = await refused(running.stub, spec(package("tabulate")))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PACKAGE_NOT_ALLOWED")
    assert "(allowed: none)" in error.message


async def test_an_allowed_package_without_installer_is_failed_precondition(
    served: Running,
) -> None:
    error = await refused(served.stub, spec(package("tabulate")))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "PACKAGE_INSTALL_FAILED"
    assert "this server installs no packages" in error.message
    assert served.sandbox.jobs == []
    # A program without packages still runs there.
    response = await served.stub.Execute(pb.ExecuteRequest(spec=spec()))
    assert response.result.stdout == b"hi\n"


async def test_an_allowed_package_is_installed_and_mounted(installing: Installing) -> None:
    response = await installing.stub.Execute(pb.ExecuteRequest(spec=spec(package("Tabulate"))))
    assert response.result.status == pb.EXECUTION_STATUS_OK
    (job,) = installing.sandbox.jobs
    language = job.language
    assert language.package_set
    assert holds(language.package_dir, "tabulate")
    assert Path(language.package_dir).parent.parent.name == "sets"
    assert language.env["PYTHONPATH"] == "/opt/codebeaker/packages"
    assert [str(r) for r in job.packages] == ["tabulate (>=0.9, <1)"]
    await installing.stub.Execute(pb.ExecuteRequest(spec=spec(package("tabulate"))))
    assert installing.installer.calls == 1  # the second run found the set
    registry = installing.app.metrics.registry
    labels = {"language": "python"}
    assert registry.get_sample_value("codebeaker_package_cache_misses_total", labels) == 1
    assert registry.get_sample_value("codebeaker_package_cache_hits_total", labels) == 1
    assert registry.get_sample_value("codebeaker_package_cache_bytes") == 1000


async def test_a_failed_install_is_failed_precondition_with_its_output(
    installing: Installing,
) -> None:
    installing.installer.fail = "ERROR: No matching distribution found for six"
    error = await refused(installing.stub, spec(package("six")))
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "PACKAGE_INSTALL_FAILED"
    assert "No matching distribution found for six" in error.message
    assert installing.sandbox.jobs == []


# ListRuntimes.


async def test_list_runtimes_lists_what_each_language_may_install(served: Running) -> None:
    response = await served.stub.ListRuntimes(pb.ListRuntimesRequest())
    installable = {
        runtime.language: [(p.name, p.version) for p in runtime.installable]
        for runtime in response.runtimes
    }
    assert installable["python"] == [("six", ""), ("tabulate", ">=0.9, <1")]
    assert installable["javascript"] == [("left-pad", "==1.3.0")]
    assert installable["c"] == []


async def test_without_a_list_nothing_is_installable(running: Running) -> None:
    response = await running.stub.ListRuntimes(pb.ListRuntimesRequest())
    assert response.runtimes and all(not r.installable for r in response.runtimes)


# The server's settings.


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[python]\ntabulate = "~=0.9"\n', "[python] tabulate: '~=0.9' is not a version range"),
        ('[cobol]\nx = "*"\n', "[cobol]: no such language on this server"),
        ("[python\n", ""),
    ],
)
def test_a_malformed_allowlist_stops_serve_naming_it(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError) as flagged:
        parse_config(["--package-allowlist", str(path)], {})
    assert str(flagged.value).startswith(f"{path}: ")
    assert problem in str(flagged.value)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        parse_config([], {"CODEBEAKER_PACKAGE_ALLOWLIST": str(path)})
    with pytest.raises(ValueError, match=re.escape(str(path))):
        check(ServerConfig().with_values(package_allowlist=str(path)), Catalog.load())


def test_a_missing_allowlist_stops_serve(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absent"):
        parse_config(["--package-allowlist", str(tmp_path / "absent")], {})


def test_a_good_allowlist_passes_the_check(allowlist: Path) -> None:
    config = parse_config(["--package-allowlist", str(allowlist)], {})
    assert config.packages.package_allowlist == str(allowlist)
    assert set(config.packages.allowlist(Catalog.load()).languages) == {"python", "javascript"}


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--package-cache-size", "0"], "package_cache_size must be positive"),
        (["--package-install-timeout", "0"], "package_install_timeout must be positive"),
        (["--package-index", "file:///srv/simple"], "package_index must be an http"),
        (["--npm-registry", "registry.npmjs.org"], "npm_registry must be an http"),
    ],
)
def test_other_package_settings_are_checked(argv: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_config(argv, {})


# Sessions.


async def test_a_session_asking_for_a_disallowed_package_is_invalid_argument(
    installing: Installing,
) -> None:
    session = spb.Session(language="python", packages=[package("six"), package("numpy")])
    with pytest.raises(aio.AioRpcError) as caught:
        await installing.sessions.CreateSession(spb.CreateSessionRequest(session=session))
    error = refusal(caught.value)
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PACKAGE_NOT_ALLOWED")
    assert [field for field, _ in error.violations] == ["session.packages[1]"]
    assert installing.installer.calls == 0


async def test_a_session_with_an_allowed_package_records_the_version_installed(
    installing: Installing,
) -> None:
    session = spb.Session(language="python", packages=[package("tabulate")])
    made = await installing.sessions.CreateSession(spb.CreateSessionRequest(session=session))
    assert made.state == spb.SESSION_STATE_READY
    assert [(p.name, p.version) for p in made.packages] == [("tabulate", "0.9.0")]
    assert installing.installer.calls == 1
