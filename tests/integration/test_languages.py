"""Every language in runtimes/languages/ on real sandboxes, from its examples.

Each language has a folder `tests/languages/<id>/` with `hello.*` (prints
`Hello, World!`), `echo.*` (copies stdin to stdout), `exit3.*` (exits with
code 3), `compile_error.*` for compiled languages, and `multi/`: a program of
several files whose entrypoint is the language's default file name, using code
from its other files, with its expected stdout in `multi.out`.

Hello world runs on every server kind (runc and gVisor hosts, cold containers)
for every language. The other examples run everywhere for the languages kept
warm (the common ones), and under runc hosts for the rest and for every second
version (bookworm's, asked for by its exact version): a sandbox is the same for
every language, and thirty languages on three kinds would cost CI minutes that
tell nothing new. (Second versions' hello world runs on every kind in
test_versions.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _pytest.mark import ParameterSet

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import run

pytestmark = pytest.mark.docker
EXAMPLES = Path(__file__).resolve().parents[1] / "languages"
CATALOG = Catalog.load()
SPECS = CATALOG.specs()
RUNTIMES = CATALOG.runtimes()  # every version of every language
COMPILED = [spec for spec in RUNTIMES if spec.compiled]
HELLO = b"Hello, World!\n"


def example(spec: LanguageSpec, name: str) -> bytes:
    (path,) = (EXAMPLES / spec.id).glob(f"{name}.*")
    return path.read_bytes()


def ok(result: pb.ExecutionResult) -> str:
    """A readable reason when a result is not what a test expected."""
    compiled = result.compile
    return f"{result.message}\n{result.stderr!r}\ncompile: {compiled.stderr!r} {compiled.stdout!r}"


SAMPLED_KINDS = ("runc-host",)


def sampled(specs: list[LanguageSpec]) -> list[ParameterSet]:
    """`specs` as parameters: the warm ones on every server kind, the others on
    SAMPLED_KINDS only."""
    only = pytest.mark.servers(*SAMPLED_KINDS)
    return [pytest.param(s, id=s.key, marks=() if s.warm else (only,)) for s in specs]


@pytest.fixture(params=sampled(RUNTIMES))
def spec(request: pytest.FixtureRequest) -> LanguageSpec:
    language: LanguageSpec = request.param
    return language


def version_of(stub: pb_grpc.ExecutionServiceStub, spec: LanguageSpec) -> str:
    """What a request asks for to get `spec`'s version: nothing for the default, else
    its exact version as the server lists it (each language's in the catalog's order)."""
    if spec.is_default:
        return ""
    listed = stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=30).runtimes
    versions = [runtime.version for runtime in listed if runtime.language == spec.id]
    keys = [other.key for other in CATALOG.versions(spec.id)]
    assert len(versions) == len(keys), versions
    return versions[keys.index(spec.key)]


@pytest.mark.parametrize("any_spec", SPECS, ids=[spec.id for spec in SPECS])
def test_hello_world(stub: pb_grpc.ExecutionServiceStub, any_spec: LanguageSpec) -> None:
    spec = any_spec
    result = run(stub, spec.id, example(spec, "hello"))
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    assert result.stdout == HELLO
    assert result.HasField("compile") is spec.compiled


def test_stdin_echo(stub: pb_grpc.ExecutionServiceStub, spec: LanguageSpec) -> None:
    data = b"line one\nline two \xc3\xa9\n"
    result = run(stub, spec.id, example(spec, "echo"), stdin=data, version=version_of(stub, spec))
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    assert result.stdout == data


def test_runtime_error_exit_code(stub: pb_grpc.ExecutionServiceStub, spec: LanguageSpec) -> None:
    result = run(stub, spec.id, example(spec, "exit3"), version=version_of(stub, spec))
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR, ok(result)
    assert result.exit_code == 3


@pytest.mark.parametrize("compiled", sampled(COMPILED))
def test_compile_error(stub: pb_grpc.ExecutionServiceStub, compiled: LanguageSpec) -> None:
    source = example(compiled, "compile_error")
    result = run(stub, compiled.id, source, version=version_of(stub, compiled))
    assert result.status == pb.EXECUTION_STATUS_COMPILE_ERROR, ok(result)
    assert result.compile.status == pb.EXECUTION_STATUS_COMPILE_ERROR
    assert result.compile.exit_code != 0
    assert result.compile.stdout + result.compile.stderr
    assert result.stdout == b""


def test_multi_file_program(stub: pb_grpc.ExecutionServiceStub, spec: LanguageSpec) -> None:
    folder = EXAMPLES / spec.id / "multi"
    files = [
        pb.File(path=path.relative_to(folder).as_posix(), content=path.read_bytes())
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    ]
    assert any(f.path == spec.file_name for f in files)
    spec_message = pb.ExecutionSpec(
        language=spec.id,
        version=version_of(stub, spec),
        files=files,
        entrypoint=spec.file_name,
    )
    response = stub.Execute(pb.ExecuteRequest(spec=spec_message), timeout=120)
    result = response.result
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    assert result.stdout == (EXAMPLES / spec.id / "multi.out").read_bytes()


JAVA_SOLUTION = b"""\
import java.util.Scanner;

public class Solution {
    public static void main(String[] args) {
        Scanner in = new Scanner(System.in);
        System.out.println(in.nextInt() + in.nextInt());
    }
}
"""


def test_a_java_public_class_runs_without_naming_its_file(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    result = run(stub, "java", JAVA_SOLUTION, stdin=b"2 40\n")
    assert result.status == pb.EXECUTION_STATUS_OK, ok(result)
    assert result.stdout == b"42\n"
