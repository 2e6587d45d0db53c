"""Time: CPU burnt by one or many processes, sleeping, stopping itself, ignoring SIGTERM.

CPU time is charged to the whole sandbox (RLIMIT_CPU alone is per process: four
busy processes would each stay under it), including processes that have
already exited, and a program that burns no CPU still ends at the wall limit,
whatever signals it ignores.
"""

from __future__ import annotations

import time

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import LANGUAGES, Sandbox, limits

pytestmark = pytest.mark.docker
CPU = 1.0
WALL = 2.0
SLACK = 10.0  # generous: a shared, noisy machine


BURNERS = [  # (program, language): one process, four at once, a relay of short-lived
    # children each reaped by its parent, orphans reaped by PID 1
    *((name, language) for name in ("spin", "spin_many", "spin_relay") for language in LANGUAGES),
    ("spin_orphans", "python"),
]


@pytest.mark.parametrize(("name", "language"), BURNERS)
def test_cpu_burn_is_stopped_by_the_cpu_limit(sandbox: Sandbox, name: str, language: str) -> None:
    started = time.monotonic()
    result = sandbox.program(name, language, limits=limits(cpu=CPU, wall=30))
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_CPU_TIME, result
    assert CPU <= result.cpu_time.ToNanoseconds() / 1e9 < CPU + 2
    assert time.monotonic() - started < CPU + SLACK


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", ["sleep_forever", "self_stop", "ignore_term"])
def test_idle_program_is_stopped_by_the_wall_limit(
    sandbox: Sandbox, name: str, language: str
) -> None:
    started = time.monotonic()
    result = sandbox.program(name, language, limits=limits(wall=WALL, cpu=30))
    assert result.status == pb.EXECUTION_STATUS_TIME_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_WALL_TIME, result
    assert result.stdout == b"up\n"
    assert result.wall_time.ToNanoseconds() / 1e9 >= WALL
    assert result.cpu_time.ToNanoseconds() / 1e9 < WALL
    assert time.monotonic() - started < WALL + SLACK
