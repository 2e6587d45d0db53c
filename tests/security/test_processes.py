"""Processes: fork bombs, thread bombs, double-forked daemons, zombies.

The process cap holds (pids cgroup under runc; RLIMIT_NPROC inside gVisor's
own kernel under runsc), the result never waits for a daemon, and nothing the
program started survives the teardown (the shared host checks).
"""

from __future__ import annotations

import time

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import LANGUAGES, RUNTIMES, Sandbox, known_weakness, limits

pytestmark = pytest.mark.docker
PROCESSES = 32
SLACK = 10.0


@pytest.mark.parametrize("language", LANGUAGES)
def test_fork_bomb_is_contained(
    sandbox: Sandbox, runtime: str, language: str, request: pytest.FixtureRequest
) -> None:
    if language == "python":
        known_weakness(
            request,
            runtime,
            ["runsc"],
            "gVisor caps the bomb at RLIMIT_NPROC inside its kernel, but the host processes "
            "behind it (ptrace-platform stubs) keep growing, ~150-200 a second for as long as "
            "the bomb runs, until they hit the host pids cgroup (now max_processes * 8 + 512 = "
            "768; dmesg: 'fork rejected by pids controller'); the whole sandbox dies with exit "
            "code 2 before any report, and the call fails with INTERNAL instead of "
            "TIME_LIMIT_EXCEEDED",
        )
    started = time.monotonic()
    result = sandbox.program(
        "fork_bomb", language, limits=limits(wall=3, cpu=30, processes=PROCESSES)
    )
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_WALL_TIME, result
    assert result.stdout == b"up\n"
    assert time.monotonic() - started < 3 + SLACK


@pytest.mark.parametrize("language", LANGUAGES)
def test_thread_bomb_is_capped(
    sandbox: Sandbox, runtime: str, language: str, request: pytest.FixtureRequest
) -> None:
    if language == "python":  # the one whose threads are all counted
        known_weakness(
            request,
            runtime,
            RUNTIMES,
            "off by one: the program gets max_processes + 1 tasks (its main thread and 32 "
            "more with max_processes=32), because the sandbox's cap is max_processes + "
            "SUPERVISOR_PIDS (2) while the supervisor is a single task",
        )
    result = sandbox.program(
        "thread_bomb", language, limits=limits(processes=PROCESSES, memory=1 << 30)
    )
    assert result.status == pb.EXECUTION_STATUS_OK, result
    started, how = result.stdout.split()
    assert how == b"refused"
    threads = int(started) + 1  # the main thread counts too (and Node's own threads)
    assert 1 < threads <= PROCESSES


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
