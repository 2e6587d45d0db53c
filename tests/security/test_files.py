"""Disk and files: full tmpfs mounts, inode floods, oversized files, fd exhaustion,
and nothing one run writes is seen by the next.

Every writable place is a size-capped tmpfs of the sandbox's own (/workspace
and /tmp 64 MiB, /dev/shm 16 MiB by default), so filling one ends in ENOSPC for
the program, not in a full host disk; the program then exits normally. Being
memory, what is written also counts against the sandbox's memory limit.
"""

from __future__ import annotations

import secrets

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.security.conftest import LANGUAGES, Sandbox, limits

pytestmark = pytest.mark.docker
MIB = 1 << 20
SIZES = {"/workspace": 64, "/tmp": 64, "/dev/shm": 16}  # MiB, the server's defaults
OPEN_FILES = 1024  # the sandbox's RLIMIT_NOFILE


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("directory", list(SIZES))
def test_filling_a_mount_ends_in_enospc(sandbox: Sandbox, directory: str, language: str) -> None:
    result = sandbox.program("fill_dir", language, args=[directory], limits=limits(wall=30))
    assert result.status == pb.EXECUTION_STATUS_OK, result
    error, written = result.stdout.split()
    assert error == b"ENOSPC"
    assert SIZES[directory] // 2 <= int(written) <= SIZES[directory]


@pytest.mark.parametrize("language", LANGUAGES)
def test_one_oversized_file_ends_in_enospc(sandbox: Sandbox, language: str) -> None:
    result = sandbox.program("big_file", language, limits=limits(wall=30))
    assert result.status == pb.EXECUTION_STATUS_OK, result
    error, written = result.stdout.split()
    assert error == b"ENOSPC"
    assert int(written) <= SIZES["/workspace"]


def test_tmpfs_contents_are_charged_to_the_sandbox_memory(sandbox: Sandbox) -> None:
    # A 64 MiB /workspace cannot be filled within a 64 MiB memory limit: the
    # files are memory, so the sandbox is OOM-killed. (The pages stay charged
    # after the writer dies, so under runc the supervisor is sometimes killed
    # too; the engine's record of the OOM kill is then the verdict.)
    memory = 64 * MIB
    result = sandbox.program(
        "fill_dir", "python", args=["/workspace"], limits=limits(memory=memory, wall=30)
    )
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, result


def test_inode_flood_is_charged_to_the_sandbox_memory(sandbox: Sandbox) -> None:
    # No inode cap is set on the tmpfs; every inode is kernel memory (under
    # gVisor, sentry memory) charged to the sandbox's cgroup, so the flood ends
    # as an OOM kill long before the host runs short.
    memory = 64 * MIB
    result = sandbox.program("inode_flood", "python", limits=limits(memory=memory, wall=30))
    assert result.status == pb.EXECUTION_STATUS_MEMORY_LIMIT_EXCEEDED, result
    assert result.peak_memory_bytes >= memory * 0.8


@pytest.mark.parametrize("language", LANGUAGES)
def test_file_descriptors_run_out_at_the_limit(sandbox: Sandbox, language: str) -> None:
    result = sandbox.program("fd_exhaustion", language)
    assert result.status == pb.EXECUTION_STATUS_OK, result
    error, opened = result.stdout.split()
    assert error == b"EMFILE"
    assert OPEN_FILES // 2 < int(opened) < OPEN_FILES


@pytest.mark.parametrize("language", LANGUAGES)
def test_nothing_written_is_seen_by_the_next_run(sandbox: Sandbox, language: str) -> None:
    token = f"mark-{secrets.token_hex(8)}"
    marked = sandbox.program("leave_marks", language, args=[token])
    assert (marked.status, marked.stdout) == (pb.EXECUTION_STATUS_OK, b"marked\n"), marked
    found = sandbox.program("find_marks", language)
    assert found.status == pb.EXECUTION_STATUS_OK, found
    assert token.encode() not in found.stdout
    entry = b"/workspace/main." + (b"py" if language == "python" else b"js")
    assert found.stdout.split() == [entry]
