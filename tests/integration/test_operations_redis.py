"""Two `codebeaker serve` processes sharing one real Redis (`--queue redis://...`), over Docker.

The queue is the servers' only link: work submitted to one is taken by both;
a server SIGKILLed mid-run leaves its job to the other once the lease (2 s, the
shortest allowed) runs out; Redis stopped and started again mid-run (its
append-only file keeps the queue) stops the work only while it is away. Which
server ran a job is read from its own log lines (one per state change).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.client import Client, OperationState, UnavailableError
from tests.integration.conftest import Server, our_containers, start_server
from tests.redis_server import RedisServer, redis_server

pytestmark = pytest.mark.docker

LEASE = 2.0
SLEEPER = "import time\ntime.sleep({seconds})\nprint('slept', flush=True)\n"


@dataclass
class Cluster:
    redis: RedisServer
    servers: list[Server] = field(default_factory=list)

    def start(self) -> Server:
        state = self.redis.directory / f"server-{len(self.servers)}-{time.monotonic_ns()}"
        server = start_server(
            "--runtime", "runc", "--pool-size", "1", "--queue", self.redis.url,
            "--queue-lease", str(LEASE), "--queue-workers", "2", "--state-dir", str(state),
        )  # fmt: skip
        self.servers.append(server)
        return server

    def client(self, n: int = 0) -> Client:
        return Client(self.servers[n].address, timeout=30)


def _remove_containers(server: Server) -> None:
    left = our_containers(server.instance)
    if left:
        subprocess.run(["docker", "rm", "-f", *left], capture_output=True, check=False)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with redis_server(appendonly=True) as redis:
        running = Cluster(redis)
        try:
            running.start()
            running.start()
            yield running
        finally:
            for server in running.servers:
                if server.process.poll() is None:
                    server.process.terminate()
                    server.process.wait(timeout=60)
                _remove_containers(server)


def events(server: Server, operation: str) -> list[str]:
    """The operation's state-change events in this server's log (JSON lines)."""
    found = []
    for line in list(server.log):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("operation") == operation:
            found.append(str(entry.get("event")))
    return found


def serving(server: Server) -> bool:
    with grpc.insecure_channel(server.address) as channel:
        answer = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)


def until(condition: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not seen within {within} s")
        time.sleep(0.1)


def test_work_submitted_to_one_server_is_split_between_both(cluster: Cluster) -> None:
    with cluster.client(0) as client:
        operations = [client.submit("python", SLEEPER.format(seconds=1)) for _ in range(8)]
        results = [operation.wait(timeout=120) for operation in operations]
    assert all(result.stdout == b"slept\n" for result in results)

    def ran_by() -> list[list[int]]:
        return [
            [n for n, server in enumerate(cluster.servers) if "operation.succeeded" in events(
                server, operation.name)]
            for operation in operations
        ]  # fmt: skip

    until(lambda: all(ran_by()), 10, "every job's log line")  # stderr is read by a thread
    assert all(len(servers) == 1 for servers in ran_by()), ran_by()  # each ran once
    assert {servers[0] for servers in ran_by()} == {0, 1}, ran_by()  # by both


def test_a_killed_servers_job_is_finished_by_the_other(cluster: Cluster) -> None:
    with cluster.client(0) as client:
        operation = client.submit("python", SLEEPER.format(seconds=4))
        until(
            lambda: any("operation.started" in events(s, operation.name) for s in cluster.servers),
            60,
            "the job started",
        )
        started = ["operation.started" in events(s, operation.name) for s in cluster.servers]
        victim = started.index(True)
        survivor = 1 - victim
        cluster.servers[victim].process.kill()
        cluster.servers[victim].process.wait(timeout=30)
        _remove_containers(cluster.servers[victim])
        with Client(cluster.servers[survivor].address, timeout=30) as other:
            result = other.get_operation(operation.name).wait(timeout=120)
            finished = other.get_operation(operation.name)
    assert result.stdout == b"slept\n"
    assert finished.state is OperationState.SUCCEEDED
    assert finished.metadata.attempts == 2
    until(
        lambda: "operation.succeeded" in events(cluster.servers[survivor], operation.name),
        10,
        "the survivor's log line",
    )
    # The killed one is replaced, so the module's other tests still have two servers.
    dead = cluster.servers.pop(victim)
    assert dead.process.returncode is not None
    cluster.start()


def test_work_resumes_after_redis_is_stopped_and_started(cluster: Cluster) -> None:
    with cluster.client(0) as client:
        operations = [client.submit("python", SLEEPER.format(seconds=1)) for _ in range(4)]
        until(
            lambda: any(
                "operation.started" in events(s, op.name)
                for s in cluster.servers
                for op in operations
            ),
            60,
            "a job started",
        )
        cluster.redis.stop()
        try:
            with pytest.raises(UnavailableError):
                client.submit("python", SLEEPER.format(seconds=0))
            # Down long enough for the workers' renewals and claims to fail too.
            until(lambda: not all(map(serving, cluster.servers)), 30, "readiness failing")
        finally:
            cluster.redis.start()
        until(lambda: all(map(serving, cluster.servers)), 30, "readiness back")
        late = client.submit("python", SLEEPER.format(seconds=0))
        results = [operation.wait(timeout=120) for operation in [*operations, late]]
        states = [client.get_operation(op.name).state for op in [*operations, late]]
    assert all(result.stdout == b"slept\n" for result in results)
    assert states == [OperationState.SUCCEEDED] * 5
