"""What `python -m bench.sessions` reads off the machine itself, not through the server:
a process tree's CPU ticks and RSS from /proc, a container's memory and CPU from its
cgroup (found through its first process, as the server finds it), the engine's shim per
container, and one family of the server's Prometheus text.

The parsers are pure (tests/unit/test_bench_sessions.py); the readers are thin.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path

from codebeaker.runtimes.docker.cgroup import sandbox_cgroups

PROC = Path("/proc")
SHIM = "containerd-shim"


def stat_ticks(text: str) -> int:
    """utime + stime (clock ticks) from the text of /proc/<pid>/stat.

    The command name (field 2) is in parentheses and may hold spaces or ')':
    the fields are counted from the last ')'."""
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12.
    return int(fields[11]) + int(fields[12])


def status_rss(text: str) -> int:
    """VmRSS in bytes from the text of /proc/<pid>/status (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def descendants(pid: int, proc: Path = PROC) -> list[int]:
    """`pid` and every process under it (children of all its threads), as they are now."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in (proc / str(current) / "task").iterdir():
                with contextlib.suppress(OSError):
                    queue += [int(c) for c in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int, proc: Path = PROC) -> float:
    """CPU time (user + system) of `pid` and its live descendants, in seconds."""
    ticks = 0
    for member in descendants(pid, proc):
        with contextlib.suppress(OSError, ValueError, IndexError):
            ticks += stat_ticks((proc / str(member) / "stat").read_text())
    return ticks / os.sysconf("SC_CLK_TCK")


def tree_rss(pid: int, proc: Path = PROC) -> int:
    total = 0
    for member in descendants(pid, proc):
        with contextlib.suppress(OSError):
            total += status_rss((proc / str(member) / "status").read_text())
    return total


@dataclass(frozen=True)
class ContainerMemory:
    """One container's memory cgroup: what the brief asks for (usage) and its parts."""

    usage_bytes: int  # v1 memory.usage_in_bytes, v2 memory.current
    anon_bytes: int  # v1 total_rss, v2 anon
    file_bytes: int  # v1 total_cache, v2 file (page cache, tmpfs included)
    shmem_bytes: int  # tmpfs and shared memory (inside file_bytes)
    cpu_seconds: float | None


def memory_stat(text: str, version: int) -> tuple[int, int, int]:
    """(anon, file, shmem) bytes from a cgroup's memory.stat."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            values[key] = int(value)
    if version == 1:
        return (
            values.get("total_rss", 0),
            values.get("total_cache", 0),
            values.get("total_shmem", 0),
        )
    return values.get("anon", 0), values.get("file", 0), values.get("shmem", 0)


def container_memory(pid: int) -> ContainerMemory | None:
    """The memory and CPU of the container whose first process is `pid` (None: unreadable)."""
    cgroups = sandbox_cgroups(pid)
    if cgroups is None:
        return None
    usage = cgroups.usage()
    try:
        stat = (cgroups.memory.path / "memory.stat").read_text()
    except OSError:
        return None
    anon, file, shmem = memory_stat(stat, cgroups.memory.version)
    return ContainerMemory(usage.memory_bytes or 0, anon, file, shmem, usage.cpu_time)


def shim_container(cmdline: bytes) -> str:
    """The container id a containerd shim serves, from its /proc/<pid>/cmdline ('' if none)."""
    argv = [part.decode(errors="replace") for part in cmdline.split(b"\0")]
    if not argv or SHIM not in argv[0]:
        return ""
    for flag, value in itertools.pairwise(argv):
        if flag == "-id":
            return value
    return ""


def smaps_pss(text: str) -> int:
    """Pss in bytes from /proc/<pid>/smaps_rollup (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    return 0


def shim_pss(container_ids: set[str], proc: Path = PROC) -> dict[str, int]:
    """Proportional memory of the shim of each of `container_ids` (one shim a container)."""
    found: dict[str, int] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            container = shim_container((entry / "cmdline").read_bytes())
            if container in container_ids:
                found[container] = smaps_pss((entry / "smaps_rollup").read_text())
    return found


def metric_total(text: str, name: str) -> float:
    """The sum of every sample of `name` (all label sets) in Prometheus text format."""
    total = 0.0
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if "{" in line:  # label values may hold spaces: the value follows the last '}'
            metric, rest = line[: line.index("{")], line[line.rindex("}") + 1 :].split()
        else:
            metric, *rest = line.split()
        if metric == name and rest:
            with contextlib.suppress(ValueError):
                total += float(rest[0])
    return total
