"""The seccomp profile of a reusable host's container (runc), as Docker takes it.

Docker's default profile refuses what a host's supervisor needs to give every
run fresh namespaces: `unshare` and `clone` with namespace flags, and `mount`
(for the run's tmpfs and /proc) — without CAP_SYS_ADMIN, which no container
of ours gets. This profile allows those and refuses, for every process of the
container, the calls that reach kernel state no namespace isolates or that no
sandbox needs: keyrings, BPF, perf events, userfaultfd, io_uring, kernel
modules and kexec, swap, reboot, accounting, quotas, the kernel log, handles
that open files by inode, the new mount API, pivot_root, chroot and setns.
The program runs under cb-supervisor's own filter on top of this one, which
also refuses new namespaces and mounts (SECURITY.md § Reusable hosts).
Under gVisor the profile is not used: the sandbox's calls go to gVisor's
kernel, and the host's processes never reach the host's.
"""

from __future__ import annotations

import functools
import json
import platform

EPERM = 1
ENOSYS = 38

REFUSED = (
    "acct",
    "add_key",
    "bpf",
    "chroot",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "setns",
    "swapoff",
    "swapon",
    "syslog",
    "umount2",
    "uselib",
    "userfaultfd",
    "vm86",
    "vm86old",
)
"""Refused with EPERM for every process of a host container."""

NOT_IMPLEMENTED = ("clone3",)
"""ENOSYS, so that the C library falls back to clone (whose flags a filter can read)."""

_ARCHES = {
    "x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
    "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"],
}


@functools.cache
def host_profile(machine: str = "") -> str:
    """The profile as JSON, for `SecurityOpt: ["seccomp=<json>"]`."""
    arch = machine or platform.machine()
    native, *others = _ARCHES.get(arch, _ARCHES["x86_64"])
    profile = {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": native, "subArchitectures": others}],
        "syscalls": [
            {"names": list(REFUSED), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM},
            {"names": list(NOT_IMPLEMENTED), "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS},
        ],
    }
    return json.dumps(profile, separators=(",", ":"))
