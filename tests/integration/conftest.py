"""A real `codebeaker serve` process over real Docker, shared by the integration tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

pytestmark = pytest.mark.docker
CODEBEAKER = str(Path(sys.executable).with_name("codebeaker"))
SERVER_SECRET = "CODEBEAKER_TEST_SECRET_VALUE"


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    address: str
    port: int
    instance: str
    log: list[str]

    def stub(self) -> pb_grpc.ExecutionServiceStub:
        return pb_grpc.ExecutionServiceStub(grpc.insecure_channel(self.address))


def _follow(stream: object, log: list[str], port_found: threading.Event) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode(errors="replace")
        log.append(line)
        if "listening on" in line:
            port_found.set()


def start_server(
    *extra: str,
    instance: str = "",
    wait_serving: bool = True,
    environ: Mapping[str, str] | None = None,
) -> Server:
    instance = instance or f"test-{os.getpid()}-{time.monotonic_ns()}"
    env = {**os.environ, "CODEBEAKER_TEST_SECRET": SERVER_SECRET, **(environ or {})}
    # Each server its own state (the embedded queue) unless a test gives it --state-dir.
    env.setdefault("CODEBEAKER_STATE_DIR", tempfile.mkdtemp(prefix="codebeaker-state-"))
    process = subprocess.Popen(
        [CODEBEAKER, "serve", "--address", "127.0.0.1:0", "--instance", instance, *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    log: list[str] = []
    listening = threading.Event()
    threading.Thread(target=_follow, args=(process.stderr, log, listening), daemon=True).start()
    if not listening.wait(30):
        process.kill()
        raise RuntimeError("server did not start:\n" + "".join(log))
    port = int(re.findall(r"\(port (\d+)\)", "".join(log))[0])
    server = Server(process, f"127.0.0.1:{port}", port, instance, log)
    if not wait_serving:
        return server
    channel = grpc.insecure_channel(server.address)
    health = health_pb2_grpc.HealthStub(channel)
    for response in health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60):
        if response.status == health_pb2.HealthCheckResponse.SERVING:
            break
    channel.close()
    return server


def stop_server(server: Server) -> int:
    server.process.terminate()
    return server.process.wait(timeout=60)


POOL_SIZE = 2


SERVER_KINDS = {
    "runc-host": ("--runtime", "runc", "--isolation", "host"),
    "runsc-host": ("--runtime", "runsc", "--isolation", "host"),
    "runc-cold": ("--runtime", "runc", "--isolation", "container", "--pool-size", "0"),
}


@pytest.fixture(scope="session", params=list(SERVER_KINDS))
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """Every integration test runs in reusable hosts under runc and gVisor, and in
    one container per run (the cold path; the warm pool has its own tests)."""
    running = start_server(*SERVER_KINDS[request.param])
    yield running
    stop_server(running)


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> str:
    """The OCI runtime of the `server` this test runs against: runc or runsc."""
    kind: str = request.node.callspec.params["server"]
    return kind.split("-")[0]


@pytest.fixture
def isolation(request: pytest.FixtureRequest) -> str:
    """How the `server` this test runs against isolates runs: host or container."""
    kind: str = request.node.callspec.params["server"]
    return "host" if kind.endswith("-host") else "container"


@pytest.fixture(scope="session")
def stub(server: Server) -> pb_grpc.ExecutionServiceStub:
    return server.stub()


def our_containers(instance: str, *filters: str) -> list[str]:
    command = [
        "docker",
        "ps",
        "-aq",
        "--no-trunc",
        "--filter",
        f"label=io.codebeaker.owner={instance}",
    ]
    for extra in filters:
        command += ["--filter", extra]
    done = subprocess.run(command, capture_output=True, check=True)
    return done.stdout.decode().split()


def pooled_containers(instance: str) -> list[str]:
    """Started containers of this server still waiting for a program."""
    return our_containers(instance, "label=io.codebeaker.execution=pooled", "status=running")


def wait_for_containers(instance: str, count: int, within: float = 10.0) -> list[str]:
    """Poll Docker (an outside observer) until exactly `count` containers are ours."""
    deadline = time.monotonic() + within
    left = our_containers(instance)
    while len(left) != count and time.monotonic() < deadline:
        time.sleep(0.05)
        left = our_containers(instance)
    return left


def wait_until_gone(instance: str, id_prefix: str, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not any(cid.startswith(id_prefix) for cid in our_containers(instance)):
            return True
        time.sleep(0.05)
    return False


def wait_until_no_containers(instance: str, within: float = 5.0) -> list[str]:
    return wait_for_containers(instance, 0, within)


def run(
    stub: pb_grpc.ExecutionServiceStub,
    language: str,
    source: str | bytes,
    **fields: object,
) -> pb.ExecutionResult:
    data = source.encode() if isinstance(source, str) else source
    spec = pb.ExecutionSpec(language=language, source=data, **fields)  # type: ignore[arg-type]
    response: pb.ExecuteResponse = stub.Execute(pb.ExecuteRequest(spec=spec), timeout=60)
    return response.result
