"""Memory: steady heap growth, one huge allocation, a V8 heap blow-up.

MEMORY_LIMIT_EXCEEDED must come from the kernel's OOM accounting (the
container's cgroup, or the engine's record of an OOM kill of the whole gVisor
sandbox), and the peak reported must reach the limit.
"""

from __future__ import annotations

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import Sandbox, limits

pytestmark = pytest.mark.docker
MEMORY = 128 << 20
CASES = [
    ("heap_growth", "python"),
    ("heap_growth", "javascript"),
    ("huge_allocation", "python"),
    ("huge_allocation", "javascript"),
    ("v8_heap", "javascript"),
]


@pytest.mark.parametrize(("name", "language"), CASES)
def test_memory_hog_is_killed_by_the_kernel(sandbox: Sandbox, name: str, language: str) -> None:
    result = sandbox.program(name, language, limits=limits(memory=MEMORY, wall=30, cpu=30))
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, result
    assert result.limit_exceeded == pb.LIMIT_MEMORY, result
    assert result.peak_memory_bytes >= MEMORY * 0.8


REPEATS = 5


@pytest.mark.parametrize("attempt", range(REPEATS))
def test_a_v8_heap_past_192_mib_is_the_memory_limit_every_time(
    sandbox: Sandbox, attempt: int
) -> None:
    """Once seen under gVisor as TIME_LIMIT_EXCEEDED (a sandbox thrashing at its limit
    until the wall): the verdict must be the memory limit on every attempt."""
    memory = 192 << 20
    result = sandbox.program("v8_heap", "javascript", limits=limits(memory=memory, wall=20))
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, (attempt, result)
    assert result.limit_exceeded == pb.LIMIT_MEMORY, (attempt, result)
