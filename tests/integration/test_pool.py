"""The warm pool of `--isolation container` on real Docker: single use, refill, fallback,
limits, drain."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from codebeaker.runtimes.catalog import Catalog
from codebeaker.v1 import execution_pb2 as pb
from tests.integration.conftest import (
    Server,
    our_containers,
    pooled_containers,
    run,
    start_server,
    stop_server,
)
from tests.integration.programs import PROGRAMS

pytestmark = pytest.mark.docker
POOL = 3
# The languages kept warm by default (spec.toml's warm = true).
LANGUAGES = len([spec for spec in Catalog.load().specs() if spec.warm])


def container_created(container_id: str) -> str:
    done = subprocess.run(
        ["docker", "inspect", "--format", "{{.Created}}", container_id],
        capture_output=True,
        check=True,
    )
    return done.stdout.decode().strip()


def wait_for_pooled(server: Server, count: int, within: float = 60.0) -> list[str]:
    deadline = time.monotonic() + within
    pooled = pooled_containers(server.instance)
    while len(pooled) != count and time.monotonic() < deadline:
        time.sleep(0.05)
        pooled = pooled_containers(server.instance)
    return pooled


@pytest.fixture(scope="module")
def pooled_server() -> Iterator[Server]:
    server = start_server("--isolation", "container", "--pool-size", str(POOL))
    yield server
    stop_server(server)


def test_pool_fills_every_language(pooled_server: Server) -> None:
    assert len(wait_for_pooled(pooled_server, POOL * LANGUAGES)) == POOL * LANGUAGES


def test_program_runs_in_a_container_started_before_the_request(pooled_server: Server) -> None:
    waiting = wait_for_pooled(pooled_server, POOL * LANGUAGES)
    result = run(pooled_server.stub(), "python", PROGRAMS["python"]["leave_file"])
    hostname = result.stdout.split()[0].decode()
    assert any(cid.startswith(hostname) for cid in waiting)


def test_each_container_is_used_once_and_nothing_carries_over(pooled_server: Server) -> None:
    stub = pooled_server.stub()
    outputs = [run(stub, "python", PROGRAMS["python"]["leave_file"]).stdout for _ in range(6)]
    hostnames = [output.split()[0] for output in outputs]
    assert len(set(hostnames)) == 6
    for output in outputs:
        assert b"left-behind" not in output


def test_pool_refills_after_use(pooled_server: Server) -> None:
    wait_for_pooled(pooled_server, POOL * LANGUAGES)
    stub = pooled_server.stub()
    for _ in range(POOL + 2):
        assert run(stub, "javascript", PROGRAMS["javascript"]["hello"]).stdout == b"hello, world\n"
    assert len(wait_for_pooled(pooled_server, POOL * LANGUAGES)) == POOL * LANGUAGES
    # used containers are removed; only the waiting ones remain
    deadline = time.monotonic() + 10
    while len(our_containers(pooled_server.instance)) != POOL * LANGUAGES:
        assert time.monotonic() < deadline, our_containers(pooled_server.instance)
        time.sleep(0.05)


def test_more_requests_than_the_pool_fall_back_to_launches(pooled_server: Server) -> None:
    stub = pooled_server.stub()
    with ThreadPoolExecutor(max_workers=8) as workers:
        results = list(
            workers.map(lambda _: run(stub, "python", PROGRAMS["python"]["hello"]), range(8))
        )
    assert all(r.status == pb.EXECUTION_STATUS_OK for r in results)
    assert all(r.stdout == b"hello, world\n" for r in results)


def test_requests_with_other_container_limits_get_their_own(pooled_server: Server) -> None:
    stub = pooled_server.stub()
    default = run(stub, "python", PROGRAMS["python"]["limits"]).stdout.split()
    limits = pb.ResourceLimits(memory_bytes=96 << 20, max_processes=10)
    custom = run(stub, "python", PROGRAMS["python"]["limits"], limits=limits).stdout.split()
    # The pids cap is the program's processes plus one for the supervisor.
    assert default == [str(256 << 20).encode(), b"65"]
    assert custom == [str(96 << 20).encode(), b"11"]


def test_shutdown_drains_the_pool() -> None:
    server = start_server("--isolation", "container", "--pool-size", str(POOL))
    assert len(wait_for_pooled(server, POOL * LANGUAGES)) == POOL * LANGUAGES
    assert stop_server(server) == 0
    assert our_containers(server.instance) == []
