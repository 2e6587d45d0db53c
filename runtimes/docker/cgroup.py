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
