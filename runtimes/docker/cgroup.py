"""A container's memory cgroup, as the server sees it from the host side.

A reusable host serves one run at a time, so its cgroup can serve as the
run's: before each run the server resets the cgroup's peak memory, and the
supervisor inside then reads the run's own peak (it cannot write its
read-only cgroupfs itself). Under cgroup v1 that is writing 0 to
`memory.max_usage_in_bytes`. Under cgroup v2 `memory.peak` resets only for
the file descriptor that writes it (Linux 6.12), which the supervisor's reads
do not share, so there is nothing to reset: the supervisor reports the
largest process of the run where the peak did not rise. Best effort either
way: a server without access to the host's cgroup tree (itself in a
container without it mounted) skips the reset.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from codebeaker.runtimes.sessions.backend import SandboxUsage

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC = Path("/proc")


@dataclass(frozen=True)
class MemoryCgroup:
    """Where a process's memory cgroup is, and which cgroup version it is."""

    path: Path
    version: int

    def reset_peak(self) -> bool:
        """Reset the peak memory to the current usage; False where that cannot be done."""
        if self.version != 1:
            return False
        with contextlib.suppress(OSError):
            (self.path / "memory.max_usage_in_bytes").write_text("0")
            return True
        return False


@dataclass(frozen=True)
class SandboxCgroups:
    """A whole sandbox's memory and CPU accounting files, read from the host."""

    memory: MemoryCgroup
    cpu_usage_file: Path | None  # nanoseconds (v1 cpuacct.usage) or cpu.stat (v2)

    def usage(self) -> SandboxUsage:
        memory = self.memory.path
        if self.memory.version == 1:
            current = _read_int(memory / "memory.usage_in_bytes")
            peak = _read_int(memory / "memory.max_usage_in_bytes")
        else:
            current = _read_int(memory / "memory.current")
            peak = _read_int(memory / "memory.peak")
        return SandboxUsage(self._cpu_seconds(), current, peak)

    def _cpu_seconds(self) -> float | None:
        path = self.cpu_usage_file
        if path is None:
            return None
        if path.name == "cpu.stat":
            with contextlib.suppress(OSError, ValueError):
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
            return None
        nanos = _read_int(path)
        return None if nanos is None else nanos / 1e9


def _read_int(path: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[0])
    return None


def sandbox_cgroups(pid: int, root: Path = CGROUP_ROOT, proc: Path = PROC) -> SandboxCgroups | None:
    """The accounting files of the sandbox whose first process is `pid`, or None."""
    memory = memory_cgroup(pid, root, proc)
    if memory is None:
        return None
    if memory.version == 2:
        return SandboxCgroups(memory, memory.path / "cpu.stat")
    cpu: Path | None = None
    with contextlib.suppress(OSError):
        for line in (proc / str(pid) / "cgroup").read_text().splitlines():
            _, _, rest = line.partition(":")
            controllers, _, path = rest.partition(":")
            if "cpuacct" in controllers.split(","):
                candidate = root / "cpuacct" / path.lstrip("/") / "cpuacct.usage"
                cpu = candidate if candidate.exists() else None
    return SandboxCgroups(memory, cpu)


def memory_cgroup(pid: int, root: Path = CGROUP_ROOT, proc: Path = PROC) -> MemoryCgroup | None:
    """The memory cgroup of process `pid` (a container's first process), or None."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    unified = ""
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            directory = root / "memory" / path.lstrip("/")
            return MemoryCgroup(directory, 1) if directory.is_dir() else None
        if hierarchy == "0" and controllers == "":
            unified = path
    if unified:
        directory = root / unified.lstrip("/")
        if (directory / "memory.current").exists():
            return MemoryCgroup(directory, 2)
    return None
