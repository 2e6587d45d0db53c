"""Processes: fork bombs, thread bombs, double-forked daemons, zombies.

The process cap holds (pids cgroup under runc; RLIMIT_NPROC inside gVisor's
own kernel under runsc), the result never waits for a daemon, and nothing the
program started survives the teardown (the shared host checks).
"""

from __future__ import annotations

import time

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import LANGUAGES, Sandbox, limits

pytestmark = pytest.mark.docker
PROCESSES = 32
SLACK = 10.0


@pytest.mark.parametrize("language", LANGUAGES)
def test_fork_bomb_is_contained(sandbox: Sandbox, language: str) -> None:
    started = time.monotonic()
    result = sandbox.program(
        "fork_bomb", language, limits=limits(wall=3, cpu=30, processes=PROCESSES)
    )
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_WALL_TIME, result
    assert result.stdout == b"up\n"
    assert time.monotonic() - started < 3 + SLACK


@pytest.mark.parametrize("language", LANGUAGES)
def test_thread_bomb_is_capped(sandbox: Sandbox, language: str) -> None:
    result = sandbox.program(
        "thread_bomb", language, limits=limits(processes=PROCESSES, memory=1 << 30)
    )
    assert result.status == pb.EXECUTION_STATUS_OK, result
    started, how = result.stdout.split()
    assert how == b"refused"
    threads = int(started) + 1  # the main thread counts too (and Node's own threads)
    assert 1 < threads <= PROCESSES
    if language == "python":  # the one whose threads are all counted: exactly the cap
        assert threads == PROCESSES, threads


@pytest.mark.parametrize("language", LANGUAGES)
def test_daemon_neither_delays_the_result_nor_survives(sandbox: Sandbox, language: str) -> None:
    started = time.monotonic()
    result = sandbox.program("daemon", language, limits=limits(wall=60))
    assert result.status == pb.EXECUTION_STATUS_OK, result
    assert result.stdout == b"parent done\n"
    assert time.monotonic() - started < SLACK  # not the daemon's hour, nor the wall limit


def test_zombies_count_against_the_cap_and_are_reaped(sandbox: Sandbox) -> None:
    result = sandbox.program("zombies", "python", limits=limits(processes=PROCESSES))
    assert result.status == pb.EXECUTION_STATUS_OK, result
    forked, zombies = map(int, result.stdout.split())
    assert 0 < forked <= PROCESSES  # with the parent, at most the cap plus one (see above)
    assert zombies > 0
