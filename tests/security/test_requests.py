"""Bad requests: oversized, malformed, NUL bytes, odd Unicode, hostile language names.

Every one is the caller's fault, so the answer is INVALID_ARGUMENT naming the
field — never INTERNAL — and no container is created for it. Odd but valid
Unicode is not an error: it reaches the program byte for byte.
"""

from __future__ import annotations

import json

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import RPC_TIMEOUT, Sandbox, limits
from tests.security.programs import PROGRAMS

pytestmark = pytest.mark.docker
MAX_SOURCE = 1 << 20  # the server's defaults
MAX_STDIN = 8 << 20
SOURCE = b"print(1)\n"


def spec(**fields: object) -> pb.ExecutionSpec:
    fields.setdefault("language", "python")
    if "files" not in fields:
        fields.setdefault("source", SOURCE)
    return pb.ExecutionSpec(**fields)  # type: ignore[arg-type]


def files(*paths: str, size: int = 10) -> list[pb.File]:
    return [pb.File(path=path, content=b"#" * size) for path in paths]


BAD = {  # case: (the field the error must name, the spec)
    "source too big": ("spec.source", spec(source=b"#" * (MAX_SOURCE + 1))),
    "files too big together": (
        "spec.files",
        spec(files=files("a.py", "b.py", size=MAX_SOURCE // 2 + 1)),
    ),
    "too many files": ("spec.files", spec(files=files(*(f"f{i}.py" for i in range(65))))),
    "stdin too big": ("spec.stdin", spec(stdin=b"\0" * (MAX_STDIN + 1))),
    "too many args": ("spec.args", spec(args=["a"] * 257)),
    "arg too long": ("spec.args[0]", spec(args=["a" * 4097])),
    "NUL in an arg": ("spec.args[1]", spec(args=["ok", "a\0b"])),
    "too many env": ("spec.env", spec(env={f"V{i}": "x" for i in range(129)})),
    "env value too long": ("spec.env", spec(env={"A": "x" * 4097})),
    "NUL in an env value": ("spec.env", spec(env={"A": "x\0y"})),
    "NUL in an env name": ("spec.env", spec(env={"A\0B": "x"})),
    "= in an env name": ("spec.env", spec(env={"A=B": "x"})),
    "empty env name": ("spec.env", spec(env={"": "x"})),
    "accented env name": ("spec.env", spec(env={"NAMÉ": "x"})),
    "RTL override in an env name": ("spec.env", spec(env={"A\u202eB": "x"})),
    "env name starting with a digit": ("spec.env", spec(env={"1A": "x"})),
    "entrypoint climbing out": ("spec.entrypoint", spec(entrypoint="../main.py")),
    "absolute entrypoint": ("spec.entrypoint", spec(entrypoint="/etc/passwd")),
    "entrypoint '.'": ("spec.entrypoint", spec(entrypoint=".")),
    "NUL in a path": ("spec.files[0].path", spec(files=files("a\0.py"))),
    "newline in a path": ("spec.files[0].path", spec(files=files("a\n.py"))),
    "path too long": ("spec.files[0].path", spec(files=files("a" * 256))),
    "path climbing out": ("spec.files[1].path", spec(files=files("a.py", "b/../../c.py"))),
    "duplicate paths": ("spec.files[1].path", spec(files=files("a.py", "a.py"))),
    "entrypoint not a file": ("spec.entrypoint", spec(files=files("a.py"), entrypoint="b.py")),
    "source and files": ("spec.files", spec(source=SOURCE, files=files("a.py"))),
    "no program": ("spec.source", spec(source=b"")),
    "language '../../bin/sh'": ("spec.language", spec(language="../../bin/sh")),
    "language 'python; rm -rf /'": ("spec.language", spec(language="python; rm -rf /")),
    "language ''": ("spec.language", spec(language="")),
    "language '   '": ("spec.language", spec(language="   ")),
    "language with NUL": ("spec.language", spec(language="python\0")),
    "language as an image": ("spec.language", spec(language="codebeaker/python")),
    "language with a tag": ("spec.language", spec(language="python:latest")),
    "language with RTL override": ("spec.language", spec(language="\u202epython")),
    "language homoglyph": ("spec.language", spec(language="pyth\u03bfn")),
    "language of 100k characters": ("spec.language", spec(language="p" * 100_000)),
    "version '../../etc'": ("spec.version", spec(version="../../etc")),
    "negative memory": ("spec.limits.memory_bytes", spec(limits=limits(memory=-1))),
    "memory above the maximum": ("spec.limits.memory_bytes", spec(limits=limits(memory=1 << 62))),
    "processes above the maximum": (
        "spec.limits.max_processes",
        spec(limits=limits(processes=1 << 30)),
    ),
    "output above the maximum": (
        "spec.limits.max_output_bytes",
        spec(limits=limits(output=1 << 40)),
    ),
    "negative wall time": (
        "spec.limits.wall_time",
        spec(limits=pb.ResourceLimits(wall_time=Duration(seconds=-1))),
    ),
    "wall time above the maximum": ("spec.limits.wall_time", spec(limits=limits(wall=1e9))),
    "CPU time above the maximum": ("spec.limits.cpu_time", spec(limits=limits(cpu=1e9))),
    "request id with a newline": ("spec.request_id", spec(request_id="a\nb")),
    "request id too long": ("spec.request_id", spec(request_id="r" * 129)),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_request_is_invalid_argument(sandbox: Sandbox, case: str) -> None:
    field, bad = BAD[case]
    with pytest.raises(grpc.RpcError) as caught:
        sandbox.execute(bad)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith(field), error.details()
    assert sandbox.created(for_requests=True) == []


@pytest.mark.parametrize("case", ["source too big", "language '../../bin/sh'", "NUL in an arg"])
def test_bad_stream_request_is_invalid_argument(sandbox: Sandbox, case: str) -> None:
    field, bad = BAD[case]
    with pytest.raises(grpc.RpcError) as caught:
        list(sandbox.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=bad), timeout=RPC_TIMEOUT))
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert (error.details() or "").startswith(field), error.details()
    assert sandbox.created(for_requests=True) == []


PLACEHOLDER = "QZ"
MALFORMED = {  # protobuf requires string fields to be UTF-8; these carry b"\xc3\x28"
    "language": spec(language=PLACEHOLDER),
    "version": spec(version=PLACEHOLDER),
    "args": spec(args=[PLACEHOLDER]),
    "env name": spec(env={PLACEHOLDER: "x"}),
    "env value": spec(env={"X": PLACEHOLDER}),
    "file path": spec(files=files(PLACEHOLDER)),
    "entrypoint": spec(entrypoint=PLACEHOLDER),
    "request_id": spec(request_id=PLACEHOLDER),
}


def wire(case: str) -> bytes:
    if case == "truncated message":
        return pb.ExecuteRequest(spec=spec()).SerializeToString()[:-3]
    data = pb.ExecuteRequest(spec=MALFORMED[case]).SerializeToString()
    assert data.count(PLACEHOLDER.encode()) == 1
    return data.replace(PLACEHOLDER.encode(), b"\xc3\x28")


@pytest.mark.parametrize("case", [*MALFORMED, "truncated message"])
def test_malformed_message_is_invalid_argument(sandbox: Sandbox, case: str) -> None:
    execute: grpc.UnaryUnaryMultiCallable[bytes, bytes]
    execute = sandbox.hostile.channel.unary_unary("/codebeaker.v1.ExecutionService/Execute")
    with pytest.raises(grpc.RpcError) as caught:
        execute(wire(case), timeout=RPC_TIMEOUT)
    error = caught.value
    assert sandbox.created(for_requests=True) == []
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details())
    assert "not a valid protobuf message" in (error.details() or "")


def test_message_above_grpcs_size_limit_is_refused_by_grpc(sandbox: Sandbox) -> None:
    # gRPC's own message-size check answers before any of our code runs, with
    # its standard code for it (RESOURCE_EXHAUSTED), still not INTERNAL.
    with pytest.raises(grpc.RpcError) as caught:
        sandbox.execute(spec(stdin=b"\0" * (65 << 20)))
    error = caught.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
    # None for it (a pool may replace a host meanwhile: that is no request's).
    assert sandbox.created(for_requests=True) == []


def test_odd_but_valid_unicode_reaches_the_program_exactly(sandbox: Sandbox) -> None:
    odd = ["\u202e", "é", "\U0001d518", "\ufeff", "a\u0301", "日本語", " ", "-c", "$(id)"]
    path = "dír/ünï códe.py"
    result = sandbox.execute(
        spec(
            language="PY",
            files=[pb.File(path=path, content=PROGRAMS["echo_args"]["python"].encode())],
            args=odd,
            env={"ODD": "\u202e\U0001d518\ufeff"},
        )
    )
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert json.loads(result.stdout) == [odd, "\u202e\U0001d518\ufeff", f"/workspace/{path}"]
