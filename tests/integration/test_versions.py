"""A language's several versions on real sandboxes: ListRuntimes lists each with the
aliases that select it, and a request gets the version it names (exact, a prefix,
unset for the default), proved by the program printing its own toolchain's version;
a version the server does not have is refused, listing those it has.

Every second version's hello world runs on every server kind."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import run
from tests.integration.test_languages import HELLO, example, ok

pytestmark = pytest.mark.docker
SECOND_VERSIONS = [spec for spec in Catalog.load().runtimes() if not spec.is_default]

# Programs that print the version of the toolchain they run on, as the image's
# version_command spells it (Go prefixes "go"; GCC's three numbers).
PRINTS_ITS_VERSION = {
    "python": ("import platform\nprint(platform.python_version())\n", ""),
    "javascript": ("console.log(process.versions.node)\n", ""),
    "ruby": ("puts RUBY_VERSION\n", ""),
    "php": ('<?php echo PHP_VERSION, "\\n";\n', ""),
    "go": (
        'package main\n\nimport (\n\t"fmt"\n\t"runtime"\n)\n\n'
        "func main() { fmt.Println(runtime.Version()) }\n",
        "go",
    ),
    "c": (
        "#include <stdio.h>\nint main(void) {\n"
        '    printf("%d.%d.%d\\n", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);\n'
        "    return 0;\n}\n",
        "",
    ),
    "java": (
        "public class Main {\n    public static void main(String[] args) {\n"
        "        System.out.println(Runtime.version().feature());\n    }\n}\n",
        "",
    ),
}


def listed(stub: pb_grpc.ExecutionServiceStub) -> dict[str, list[pb.Runtime]]:
    runtimes = stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=30).runtimes
    found: dict[str, list[pb.Runtime]] = {}
    for runtime in runtimes:
        found.setdefault(runtime.language, []).append(runtime)
    return found


def printed_version(stub: pb_grpc.ExecutionServiceStub, language: str, version: str) -> str:
    source, prefix = PRINTS_ITS_VERSION[language]
    result = run(stub, language, source, version=version)
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    return result.stdout.decode().strip().removeprefix(prefix)


def is_that_version(printed: str, runtime: pb.Runtime) -> bool:
    """Whether what a program printed is `runtime`'s version, or its leading parts
    (Java prints its feature release)."""
    return runtime.version == printed or runtime.version.startswith(printed + ".")


def test_list_runtimes_lists_every_version_with_its_aliases(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    found = listed(stub)
    for spec in SECOND_VERSIONS:
        versions = found[spec.id]
        assert len(versions) == 2, versions
        default, second = versions
        assert default.is_default and not second.is_default
        assert default.version and second.version and default.version != second.version
        assert second.version_aliases, second  # e.g. 3.11 for 3.11.2
        assert set(default.version_aliases).isdisjoint(second.version_aliases)
        for runtime in versions:
            assert all(runtime.version.startswith(a + ".") for a in runtime.version_aliases)
    assert all(versions[0].is_default for versions in found.values())


@pytest.mark.parametrize("language", sorted(PRINTS_ITS_VERSION))
def test_a_request_gets_the_version_it_names(
    stub: pb_grpc.ExecutionServiceStub, language: str
) -> None:
    default, second = listed(stub)[language]
    assert is_that_version(printed_version(stub, language, ""), default)
    assert is_that_version(printed_version(stub, language, second.version), second)  # exact
    for alias in second.version_aliases:  # prefixes
        assert is_that_version(printed_version(stub, language, alias), second)
    for alias in default.version_aliases:
        assert is_that_version(printed_version(stub, language, alias), default)


def test_the_stream_says_which_version_runs(stub: pb_grpc.ExecutionServiceStub) -> None:
    default, second = listed(stub)["python"]
    for asked, expected in (("", default.version), (second.version_aliases[0], second.version)):
        spec = pb.ExecutionSpec(language="python", source=b"print(1)\n", version=asked)
        stream = stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=60)
        first = next(iter(stream))
        assert first.started.version == expected
        stream.cancel()


@pytest.mark.parametrize("asked", ["3.12", "2", "3.11.2.1", "bookworm"])
def test_an_unknown_version_is_refused_listing_the_versions(
    stub: pb_grpc.ExecutionServiceStub, asked: str
) -> None:
    default, second = listed(stub)["python"]
    spec = pb.ExecutionSpec(language="python", source=b"print(1)\n", version=asked)
    with pytest.raises(grpc.RpcError) as refused:
        stub.Execute(pb.ExecuteRequest(spec=spec), timeout=30)
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    message = str(error.details())
    assert f"python {asked!r} is not available" in message
    assert f"{default.version}, {second.version}" in message
    status = rpc_status.from_call(error)
    assert status is not None
    reasons, fields = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [violation.field for violation in bad.field_violations]
    assert reasons == ["VERSION_UNAVAILABLE"]
    assert fields == ["spec.version"]


@pytest.mark.parametrize("second", SECOND_VERSIONS, ids=[s.key for s in SECOND_VERSIONS])
def test_every_second_version_runs_hello_world(
    stub: pb_grpc.ExecutionServiceStub, second: LanguageSpec
) -> None:
    (runtime,) = (r for r in listed(stub)[second.id] if not r.is_default)
    result = run(stub, second.id, example(second, "hello"), version=runtime.version)
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    assert result.stdout == HELLO
