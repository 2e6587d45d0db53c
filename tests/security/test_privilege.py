"""Privilege: no way up from uid 65534, no way into PID 1, the kernel kept at arm's length.

Each probe reports what every attempt got (see probes.py); the table says what
each runtime must answer. Where gVisor answers differently by design, the
expectation says why; where it answers wrongly, the case is a known weakness.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from codebeaker.v1 import execution_pb2 as pb
from tests.integration.conftest import our_containers
from tests.security.conftest import LANGUAGES, RPC_TIMEOUT, Sandbox
from tests.security.probes import READ_ONLY_PATHS, SYSCALLS
from tests.security.programs import PROGRAMS

pytestmark = pytest.mark.docker
NOBODY = 65534
# Capability bits that would matter on the host: NET_ADMIN, NET_RAW, SYS_MODULE,
# SYS_RAWIO, SYS_PTRACE, SYS_ADMIN, SYS_BOOT.
HOST_DANGEROUS_CAPS = (12, 13, 16, 17, 19, 21, 22)
# Errno names that mean "refused"; anything else (even EINVAL) could mean the
# call got through to the kernel's argument checks.
REFUSED = {"EPERM", "EACCES", "ENOSYS", "ENODEV", "ENOTSUP", "EOPNOTSUPP", "EROFS", "ENOENT"}


NODE_REFUSES = "ERR_INVALID_STATE"


@pytest.mark.parametrize("language", LANGUAGES)
def test_cannot_become_root(sandbox: Sandbox, language: str, isolation: str) -> None:
    report = sandbox.probe("identity", language)
    # In a host's nested user namespace uid and gid 0 do not exist (only the
    # program's are mapped), so the kernel refuses them as invalid.
    refused = "EINVAL" if isolation == "host" else "EPERM"
    expected = {"setuid": refused, "setgid": refused, "setgroups": "EPERM", "seteuid": refused}
    if language == "javascript" and report.get("setuid") == NODE_REFUSES:
        # Node 20.x refuses these itself, before any system call, where libuv may use
        # io_uring (CVE-2024-22017); the other languages' probes ask the kernel.
        expected = dict.fromkeys(expected, NODE_REFUSES)
    assert report == {**expected, "uid": NOBODY, "euid": NOBODY}


def test_setuid_binaries_run_as_the_caller(sandbox: Sandbox, isolation: str) -> None:
    # no-new-privileges: exec of a setuid-root binary keeps every uid at 65534.
    # (In a host's nested user namespace root is not mapped: passwd's owner shows
    # as the overflow uid, and it is still setuid.)
    report = sandbox.probe("setuid_binary")
    root_owned = isolation == "container"
    assert report == {"setuid_root": root_owned, "prompt": "Current ", "uids": [NOBODY] * 4}


@pytest.mark.parametrize("language", LANGUAGES)
def test_no_capabilities(sandbox: Sandbox, language: str) -> None:
    report = sandbox.probe("capabilities", language)
    assert "CapEff" in report
    assert set(report.values()) == {0}, report


def test_no_new_privileges_and_seccomp(sandbox: Sandbox, runtime: str) -> None:
    report = sandbox.probe("status_flags")
    if runtime == "runsc":
        # gVisor's /proc/self/status has no NoNewPrivs line. runsc does not
        # install Docker's seccomp profile inside the sandbox (the Sentry is the
        # syscall filter, itself under a host filter: see
        # test_host_view_of_the_sandbox); the filter seen is cb-supervisor's own.
        assert report == {"no_new_privs": 1, "seccomp": 2, "Seccomp": 2}
    else:
        assert report == {"no_new_privs": 1, "seccomp": 2, "NoNewPrivs": 1, "Seccomp": 2}


@pytest.mark.parametrize(("language", "version"), [("python", "3.11"), ("javascript", "18")])
def test_a_second_version_gets_the_same_sandbox(
    sandbox: Sandbox, language: str, version: str, isolation: str, runtime: str
) -> None:
    """Bookworm's older toolchains run in images of their own, under the same
    supervisor, identity, capabilities and filter as the default's."""
    identity = sandbox.probe("identity", language, version=version)
    assert (identity["uid"], identity["euid"]) == (NOBODY, NOBODY)
    refused = {"EINVAL" if isolation == "host" else "EPERM", "EPERM", NODE_REFUSES}
    assert {identity[call] for call in ("setuid", "setgid", "setgroups", "seteuid")} <= refused
    assert set(sandbox.probe("capabilities", language, version=version).values()) == {0}
    if language == "python":
        flags = sandbox.probe("status_flags", language, version=version)
        assert (flags["no_new_privs"], flags["seccomp"], flags["Seccomp"]) == (1, 2, 2)
        assert flags.get("NoNewPrivs", 1) == 1 and ("NoNewPrivs" in flags) is (runtime == "runc")


def test_cannot_trace_pid_1(sandbox: Sandbox) -> None:
    report = sandbox.probe("ptrace_init")
    assert report == {"attach": "EPERM", "seize": "EPERM", "mem": "EACCES"}


def test_signals_to_pid_1_cannot_hurt_it(sandbox: Sandbox, runtime: str) -> None:
    # Either way cb-supervisor lives on and reports (the suite's host checks
    # then run the next program normally).
    report = sandbox.probe("signal_init")
    signals = ["SIGCHLD", "SIGPIPE", "SIGSTOP", "SIGTERM", "SIGKILL"]
    if runtime == "runsc":
        # gVisor would deliver them to its init; the supervisor's own uid
        # (the program's is another) makes kill() itself fail.
        assert report == dict.fromkeys(signals, "EPERM")
    else:
        # The kernel accepts the call and drops the signal: PID 1 of a PID
        # namespace only gets signals it has handlers for.
        assert report == dict.fromkeys(signals, "ok")


def test_pid_1_is_opaque(sandbox: Sandbox, runtime: str) -> None:
    report = sandbox.probe("init_opaque")
    closed = dict.fromkeys(["environ", "fd", "root", "cwd", "maps", "mem", "fd/1"], "EACCES")
    if runtime == "runsc":
        # gVisor ignores PR_SET_DUMPABLE and grants /proc/1 by file owner: the
        # supervisor's effective uid is the program's (so that the files it
        # writes are the program's), so the program can read its environment
        # (the container's fixed one: nothing of the server's), its memory map
        # and the list of its descriptors. Opening one, its memory, root and
        # cwd are refused (real uid differs), so no frame can be forged.
        assert report == {**closed, "environ": "READ", "fd": "READ", "maps": "READ"}
    else:
        assert report == closed


def test_cannot_mount_or_chroot(sandbox: Sandbox) -> None:
    report = sandbox.probe("mount")
    assert report == {"mount": "EPERM", "umount": "EPERM", "chroot": "EPERM"}


def test_no_new_namespaces(sandbox: Sandbox, runtime: str) -> None:
    # gVisor would let an unprivileged process make a user namespace (and the
    # others after it); cb-supervisor's seccomp filter refuses every one.
    report = sandbox.probe("unshare")
    assert report == dict.fromkeys(["user", "mount", "net", "pid", "uts", "ipc"], "EPERM")


def test_no_mount_even_in_a_user_namespace(sandbox: Sandbox, runtime: str) -> None:
    report = sandbox.probe("mount_in_userns")
    assert report == {"unshare": "EPERM", "mount": "not tried"}


def test_no_kernel_modules(sandbox: Sandbox) -> None:
    report = sandbox.probe("kernel_modules")
    assert report == dict.fromkeys(["init_module", "finit_module", "delete_module"], "EPERM")


def test_deep_kernel_interfaces_are_refused(sandbox: Sandbox) -> None:
    report = sandbox.probe("kernel_surface")
    assert set(report) == set(SYSCALLS)
    assert {key: value for key, value in report.items() if value not in REFUSED} == {}


def test_no_io_uring_on_the_host_kernel(
    sandbox: Sandbox, runtime: str, request: pytest.FixtureRequest
) -> None:
    # cb-supervisor's own seccomp filter refuses it under both runtimes.
    report = sandbox.probe("io_uring")
    assert report == {"io_uring_setup": "EPERM"}


def test_kernel_state_is_not_readable(sandbox: Sandbox) -> None:
    report = sandbox.probe("kernel_snooping")
    assert {path: got for path, got in report.items() if got == "READ"} == {}


@pytest.mark.parametrize("language", LANGUAGES)
def test_read_only_paths_cannot_be_opened_for_writing(
    sandbox: Sandbox, runtime: str, language: str
) -> None:
    report = sandbox.probe("read_only_paths", language)
    assert set(READ_ONLY_PATHS) < set(report)
    if runtime == "runsc":
        # gVisor lets a process lower its own oom_score_adj, but its kernel has
        # no OOM killer that would read it: the host's OOM killer sees only the
        # whole sandbox, whose score the program cannot touch.
        assert report.pop("oom_score_adj=-1000") == "ok"
    assert {path: got for path, got in report.items() if got == "ok"} == {}


def test_no_device_nodes(sandbox: Sandbox, runtime: str) -> None:
    report = sandbox.probe("devices")
    harmless = {"null", "zero", "full", "random", "urandom", "tty", "pts/ptmx"}
    if runtime == "runsc":
        # gVisor creates device nodes without CAP_MKNOD, in its own tmpfs, but
        # no device stands behind them: opening one fails. Its /dev adds its own
        # FUSE and TUN devices, both served by the Sentry, not the host.
        made, opened = ("ok", "ok"), ("ENXIO", "ENXIO")
        harmless |= {"fuse", "net/tun"}
    else:
        made, opened = ("EPERM", "EPERM"), ("no node", "no node")
    assert (report["mknod_block"], report["mknod_char"]) == made
    assert (report["open_block"], report["open_char"]) == opened
    assert report["block"] == []
    assert set(report["char"]) <= harmless, report


def test_kernel_seen_by_the_program(sandbox: Sandbox, runtime: str) -> None:
    # Also proves the runtime flag took effect: gVisor reports its own kernel,
    # runc the host's (the kernel is shared: see SECURITY.md).
    report = sandbox.probe("kernel_release")
    assert report["release"] == ("4.4.0" if runtime == "runsc" else os.uname().release)


def host_view(container_id: str) -> list[dict[str, str]]:
    """What the host kernel says about each process in the container's cgroup."""
    seen = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or container_id not in (entry / "cgroup").read_text():
                continue
            fields = dict(
                line.split(":\t", 1) for line in (entry / "status").read_text().splitlines()
            )
            fields["userns"] = os.readlink(entry / "ns" / "user")
            fields["netns"] = os.readlink(entry / "ns" / "net")
            fields["cmdline"] = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except OSError:  # it exited while we looked
            continue
        seen.append(fields)
    return seen


def test_host_view_of_the_sandbox(sandbox: Sandbox, runtime: str) -> None:
    """From the host: every process of the sandbox is confined, whatever it claims inside."""
    spec = sandbox.spec("python", PROGRAMS["hostname"]["python"])
    call = sandbox.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=spec), timeout=RPC_TIMEOUT)
    hostname = next(e.output.data for e in call if e.WhichOneof("event") == "output").strip()
    ours = our_containers(sandbox.server.instance)
    container = next(c for c in ours if c.startswith(hostname.decode()))
    processes = host_view(container)
    call.cancel()
    sandbox.mark_ended()
    host_userns, host_netns = os.readlink("/proc/self/ns/user"), os.readlink("/proc/self/ns/net")
    assert processes
    for process in processes:
        assert (process["NoNewPrivs"], process["Seccomp"]) == ("1", "2"), process
        assert process["netns"] != host_netns, process
        caps = int(process["CapEff"], 16)
        if runtime == "runc":
            assert process["Uid"].split() == [str(NOBODY)] * 4, process
            assert caps == 0 and int(process["CapBnd"], 16) == 0, process
        elif process["userns"] == host_userns:
            # Only gVisor's gofer (the file proxy) keeps a few capabilities in
            # the host's user namespace, none that reach beyond files.
            assert process["cmdline"] == "runsc-gofer" or caps == 0, process
            assert not [bit for bit in HOST_DANGEROUS_CAPS if caps >> bit & 1], process
        else:
            # The Sentry and its stubs: capabilities only in their own namespace.
            assert process["Uid"].split() == [str(NOBODY)] * 4, process
