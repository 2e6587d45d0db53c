"""End-to-end behaviour of real sandboxes through the gRPC API, per language."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.runtimes.catalog import Catalog
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import (
    SERVER_SECRET,
    Server,
    our_containers,
    run,
    wait_until_gone,
)
from tests.integration.programs import PROGRAMS

pytestmark = pytest.mark.docker
LANGUAGES = ["python", "javascript"]


def program(language: str, name: str) -> str:
    return PROGRAMS[language][name]


@pytest.mark.parametrize("language", LANGUAGES)
def test_hello_world(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    result = run(stub, language, program(language, "hello"))
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert result.stdout == b"hello, world\n"
    assert result.exit_code == 0
    assert result.wall_time.ToNanoseconds() > 0
    assert result.peak_memory_bytes > 0


@pytest.mark.parametrize("language", LANGUAGES)
def test_stdin_echo(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    limits = pb.ResourceLimits(max_output_bytes=2 << 20)
    result = run(stub, language, program(language, "echo"), stdin=data, limits=limits)
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert result.stdout == data


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_stdin_is_eof_at_once(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    limits = pb.ResourceLimits(wall_time=Duration(seconds=5))
    result = run(stub, language, program(language, "echo"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert result.stdout == b""


@pytest.mark.parametrize("language", LANGUAGES)
def test_exit_code_is_reported(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    result = run(stub, language, program(language, "exit3"))
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR
    assert result.exit_code == 3


@pytest.mark.parametrize("language", LANGUAGES)
def test_uncaught_exception(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    result = run(stub, language, program(language, "throw"))
    assert result.status == pb.EXECUTION_STATUS_RUNTIME_ERROR
    assert result.exit_code == 1
    assert b"boom" in result.stderr


@pytest.mark.parametrize("language", LANGUAGES)
def test_infinite_loop_hits_time_limit(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    # The wall limit leaves room: on a loaded machine the loop may get half a core.
    limits = pb.ResourceLimits(wall_time=Duration(seconds=5), cpu_time=Duration(seconds=1))
    started = time.monotonic()
    result = run(stub, language, program(language, "loop"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_CPU_TIME
    assert "CPU time" in result.message
    assert result.cpu_time.ToNanoseconds() >= 1_000_000_000
    assert time.monotonic() - started < 10


def test_sleeping_program_hits_wall_limit(stub: pb_grpc.ExecutionServiceStub) -> None:
    limits = pb.ResourceLimits(wall_time=Duration(seconds=1))
    result = run(stub, "python", program("python", "sleep"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_WALL_TIME
    assert "wall time" in result.message
    assert result.stdout == b"up\n"


@pytest.mark.parametrize("language", LANGUAGES)
def test_memory_bomb_hits_memory_limit(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    limits = pb.ResourceLimits(memory_bytes=128 << 20, wall_time=Duration(seconds=20))
    result = run(stub, language, program(language, "memory"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_MEMORY
    assert result.peak_memory_bytes >= 100 << 20


@pytest.mark.parametrize("language", LANGUAGES)
def test_print_flood_is_cut_exactly_at_the_cap(
    stub: pb_grpc.ExecutionServiceStub, language: str
) -> None:
    cap = 100_000
    limits = pb.ResourceLimits(max_output_bytes=cap)
    result = run(stub, language, program(language, "flood"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_OUTPUT_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_OUTPUT
    assert result.stdout_truncated
    assert result.stdout == b"y" * cap


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_network(stub: pb_grpc.ExecutionServiceStub, server: Server, language: str) -> None:
    result = run(stub, language, program(language, "network"), args=[str(server.port)])
    assert result.status == pb.EXECUTION_STATUS_OK, result
    interfaces, routes, connect = result.stdout.decode().splitlines()
    assert interfaces == "['lo']"
    assert routes == "0"
    assert connect.startswith("refused")


@pytest.mark.parametrize("language", LANGUAGES)
def test_root_filesystem_is_read_only(stub: pb_grpc.ExecutionServiceStub, language: str) -> None:
    result = run(stub, language, program(language, "write_root"))
    assert result.stdout.startswith(b"blocked"), result


def test_fork_bomb_is_contained_and_next_run_is_normal(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    limits = pb.ResourceLimits(wall_time=Duration(seconds=3), max_processes=32)
    result = run(stub, "python", program("python", "fork_bomb"), limits=limits)
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.stdout.startswith(b"fork refused after")
    assert int(result.stdout.split()[-1]) <= 32
    after = run(stub, "python", program("python", "hello"))
    assert after.status == pb.EXECUTION_STATUS_OK
    assert after.stdout == b"hello, world\n"


def test_server_environment_does_not_reach_the_program(
    stub: pb_grpc.ExecutionServiceStub,
) -> None:
    result = run(stub, "python", program("python", "env"), env={"MINE": "yes"})
    assert SERVER_SECRET.encode() not in result.stdout
    names = {line.split(b"=", 1)[0] for line in result.stdout.splitlines()}
    assert b"MINE" in names
    language_env = {name.encode() for name in Catalog.load().resolve("python").env}
    assert language_env >= {b"PYTHONUNBUFFERED", b"PYTHONDONTWRITEBYTECODE"}
    assert names <= {b"PATH", b"HOME", b"TMPDIR", b"LANG", b"MINE", b"PWD"} | language_env


@pytest.mark.parametrize("language", LANGUAGES)
def test_stream_delivers_first_output_before_the_result(
    stub: pb_grpc.ExecutionServiceStub, language: str
) -> None:
    spec = pb.ExecutionSpec(language=language, source=program(language, "slow").encode())
    arrivals: list[tuple[str | None, float, pb.ExecuteStreamResponse]] = []
    for event in stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=30):
        arrivals.append((event.WhichOneof("event"), time.monotonic(), event))
    kinds = [kind for kind, _, _ in arrivals]
    assert kinds[0] == "started" and kinds[-1] == "result"
    assert [e.sequence for _, _, e in arrivals] == list(range(1, len(arrivals) + 1))
    first_output = next(t for kind, t, _ in arrivals if kind == "output")
    result_time = arrivals[-1][1]
    assert result_time - first_output > 0.7
    stdout = b"".join(e.output.data for kind, _, e in arrivals if kind == "output")
    assert stdout == b"first\nsecond\n"


def test_utf8_split_across_writes_arrives_intact(stub: pb_grpc.ExecutionServiceStub) -> None:
    spec = pb.ExecutionSpec(language="python", source=program("python", "split_utf8").encode())
    events = list(stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=30))
    data = b"".join(e.output.data for e in events if e.WhichOneof("event") == "output")
    assert data.decode("utf-8") == "\u20ac\n"


def test_client_cancel_leaves_no_container(server: Server) -> None:
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.ExecutionServiceStub(channel)
    spec = pb.ExecutionSpec(language="python", source=program("python", "hostname").encode())
    call = stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=60)
    for event in call:
        if event.WhichOneof("event") == "output":
            hostname = event.output.data.decode().strip()
            break
    assert any(cid.startswith(hostname) for cid in our_containers(server.instance))
    call.cancel()
    cancelled_at = time.monotonic()
    assert wait_until_gone(server.instance, hostname, within=5.0)
    assert time.monotonic() - cancelled_at < 1.5
    channel.close()


def test_unknown_language_is_invalid_argument(stub: pb_grpc.ExecutionServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        run(stub, "brainfudge", "+")
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    listed = (error.details() or "").replace(",", " ").split()
    assert {"javascript", "php", "python", "kotlin", "sql"} <= set(listed)


def test_list_runtimes_reports_real_versions(stub: pb_grpc.ExecutionServiceStub) -> None:
    runtimes = stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=10).runtimes
    versions = {r.language: r.version for r in runtimes if r.is_default}
    assert versions["python"].startswith("3.")
    assert versions["javascript"][0].isdigit()


def test_a_container_outlives_its_execution_only_as_a_reusable_host(
    stub: pb_grpc.ExecutionServiceStub, server: Server, isolation: str
) -> None:
    result = run(stub, "python", "import socket\nprint(socket.gethostname())\n")
    hostname = result.stdout.decode().strip()
    assert hostname
    if isolation == "container":
        assert wait_until_gone(server.instance, hostname, within=10.0)
    else:  # it stays to serve the next run (what a run leaves: tests/security/test_reuse.py)
        hosts = our_containers(server.instance, "label=io.codebeaker.execution=host")
        assert any(cid.startswith(hostname) for cid in hosts)
