"""The hardened container configuration: DESIGN.md's sandbox rules as one dict.

Every sandbox is created from `container_config`: no network, read-only root,
size-capped tmpfs for the workdir and /tmp, every capability dropped,
no-new-privileges, an unprivileged user, pids and memory limits without swap,
a CPU quota, and our ownership labels. PID 1 is cb-supervisor, which waits on
its attached stdin for the program. Nothing from the server's environment is
passed in: the container's environment is written out here in full.
"""

from __future__ import annotations

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.docker.host_seccomp import host_profile
from codebeaker.runtimes.docker.labels import (
    EXECUTION_LABEL,
    LANGUAGE_LABEL,
    OWNER_LABEL,
    PACKAGE_SET_LABEL,
    SESSION_LABEL,
    image_for,
)
from codebeaker.runtimes.docker.settings import GVISOR, DockerSettings
from codebeaker.runtimes.layout import BASE_ENV, PACKAGES_MOUNT, SANDBOX_UID, WORKDIR
from codebeaker.runtimes.model import Limits
from codebeaker.runtimes.sessions.backend import SessionLimits

SUPERVISOR = "/usr/local/bin/cb-supervisor"
SANDBOX_USER = f"{SANDBOX_UID}:{SANDBOX_UID}"
# The supervisor is one task on top of what the program is allowed; in a reusable
# host, three: the host's supervisor, the run's namespace helper and the run's own.
SUPERVISOR_PIDS = 1
HOST_SUPERVISOR_PIDS = 3
# Host threads gVisor may need: its ptrace platform backs each sandbox process
# with host stub processes and threads, and the sentry and gofer have their own.
# Under a fork bomb the stubs keep growing (~150 a second here, even though the
# bomb itself is held to RLIMIT_NPROC inside), so this backstop is what decides
# how long a bomb can run before the sandbox dies (SECURITY.md).
GVISOR_HOST_PIDS_PER_PROCESS = 16
GVISOR_SENTRY_THREADS = 512


def container_config(
    spec: LanguageSpec,
    limits: Limits,
    settings: DockerSettings,
    execution_id: str,
    *,
    reusable: bool = False,
) -> dict[str, object]:
    """The body of POST /containers/create for one sandbox, or, `reusable`, for a
    host that runs one program after another, each in fresh namespaces."""
    # Docker copies the image's directory attributes onto a tmpfs, so the
    # workspace is handed to the sandbox user by uid/gid rather than by mode.
    tmpfs_flags = "rw,nosuid,nodev"
    runtime = settings.runtime_for(spec.id)
    pids_limit, ulimits = _process_limits(runtime, limits.max_processes, reusable)
    host_config: dict[str, object] = {
        "NetworkMode": "none",
        "ReadonlyRootfs": True,
        "Tmpfs": {
            WORKDIR: f"{tmpfs_flags},exec,uid={SANDBOX_UID},gid={SANDBOX_UID},"
            f"size={settings.workspace_bytes}",
            "/tmp": f"{tmpfs_flags},noexec,size={settings.tmp_bytes}",
        },
        "CapDrop": ["ALL"],
        "CapAdd": _supervisor_caps(runtime),
        "SecurityOpt": ["no-new-privileges"],
        "PidsLimit": pids_limit,
        "Memory": limits.memory_bytes,
        "MemorySwap": limits.memory_bytes,
        "MemorySwappiness": 0,
        "NanoCpus": int(settings.cpus * 1e9),
        "Ulimits": [
            _ulimit("nofile", settings.open_files),
            _ulimit("core", 0),
            *ulimits,
        ],
        "IpcMode": "private",
        "ShmSize": settings.shm_bytes,
        "Runtime": runtime,
        "Init": False,
        "AutoRemove": False,
        "LogConfig": {"Type": "none", "Config": {}},
    }
    command = [SUPERVISOR]
    if reusable:
        command += [
            "--host",
            str(settings.workspace_bytes),
            str(settings.tmp_bytes),
            str(settings.shm_bytes),
        ]
        if runtime != GVISOR:
            host_config.update(_host_mode_options())
    labels = {
        OWNER_LABEL: settings.instance,
        EXECUTION_LABEL: execution_id,
        LANGUAGE_LABEL: spec.id,
    }
    if spec.package_dir:  # a request's packages, read-only (set-id bits stripped by the cache)
        host_config["Mounts"] = [
            {"Type": "bind", "Source": spec.package_dir, "Target": PACKAGES_MOUNT, "ReadOnly": True}
        ]
        labels[PACKAGE_SET_LABEL] = spec.package_set
    return {
        "Image": image_for(spec, settings.images),
        "Cmd": command,
        "User": _supervisor_user(runtime),
        "WorkingDir": WORKDIR,
        "Env": [f"{key}={value}" for key, value in BASE_ENV.items()],
        "AttachStdin": True,
        "AttachStdout": True,
        "AttachStderr": True,
        "OpenStdin": True,
        "StdinOnce": True,
        "Tty": False,
        "NetworkDisabled": True,
        "Labels": labels,
        "HostConfig": host_config,
    }


SESSION_EXECUTION = "session"  # execution label of a session's container


def session_config(
    spec: LanguageSpec, limits: SessionLimits, settings: DockerSettings, session_id: str
) -> dict[str, object]:
    """The body of POST /containers/create for a session: hardened as a one-shot
    sandbox, with the session's limits, its agent as PID 1 (PROTOCOL.md § Session
    mode), and stdin that stays open when the server detaches (a restarted server
    attaches again)."""
    one_shot = Limits(
        wall_time=0.0,
        cpu_time=0.0,
        memory_bytes=limits.memory_bytes,
        max_processes=limits.max_processes,
        max_output_bytes=0,
    )
    config = container_config(spec, one_shot, settings, SESSION_EXECUTION)
    host_config = config["HostConfig"]
    assert isinstance(host_config, dict)
    tmpfs = dict(host_config["Tmpfs"])
    tmpfs[WORKDIR] = tmpfs[WORKDIR].rsplit("size=", 1)[0] + f"size={limits.disk_bytes}"
    host_config["Tmpfs"] = tmpfs
    host_config["NanoCpus"] = int(limits.cpus * 1e9)
    labels = config["Labels"]
    assert isinstance(labels, dict)
    labels[SESSION_LABEL] = session_id
    config.update(Cmd=[SUPERVISOR, "--session"], StdinOnce=False)
    return config


def session_resources(runtime: str, limits: SessionLimits) -> dict[str, int]:
    """What POST /containers/{id}/update changes for a started session's limits."""
    pids, _ = _process_limits(runtime, limits.max_processes)
    return {
        "Memory": limits.memory_bytes,
        "MemorySwap": limits.memory_bytes,
        "NanoCpus": int(limits.cpus * 1e9),
        "PidsLimit": pids,
    }


def _ulimit(name: str, value: int) -> dict[str, object]:
    return {"Name": name, "Soft": value, "Hard": value}


def _supervisor_user(runtime: str) -> str:
    """Under gVisor the supervisor starts as root to give the program a uid of
    its own: gVisor honours neither PR_SET_DUMPABLE nor init's signal
    protection, so a shared uid would let the program signal or open PID 1.
    Under runc the kernel protects PID 1 and everything runs as 65534."""
    return "0:0" if runtime == GVISOR else SANDBOX_USER


def _supervisor_caps(runtime: str) -> list[str]:
    """All the root supervisor needs to empty the bounding set and change uids;
    it has none left once it has (every uid non-zero)."""
    return ["SETPCAP", "SETUID", "SETGID"] if runtime == GVISOR else []


def _host_mode_options() -> dict[str, object]:
    """What a reusable host needs under runc beyond the one-shot hardening: our own
    seccomp profile (Docker's refuses unshare and mount), and /proc without
    Docker's masks (the kernel refuses a new /proc where any of its paths is
    covered); each run's supervisor masks the same paths again in the run's own
    /proc. SECURITY.md § Reusable hosts says why this gives the program nothing."""
    return {
        "SecurityOpt": ["no-new-privileges", f"seccomp={host_profile()}"],
        "MaskedPaths": [],
        "ReadonlyPaths": [],
    }


def _process_limits(
    runtime: str, processes: int, reusable: bool = False
) -> tuple[int, list[dict[str, object]]]:
    """Where the process cap goes: (host pids-cgroup limit, extra ulimits).

    Under runc the sandbox's processes are host processes, so the pids cgroup
    caps them (RLIMIT_NPROC would not: it counts every sandbox of the same uid
    on the host). Under gVisor the sandbox's processes live inside its own
    kernel, which enforces RLIMIT_NPROC per sandbox, while the host cgroup
    counts the sentry's own threads; a cap there as tight as the program's
    would break the sandbox itself, so it only gets a backstop.
    """
    if runtime == GVISOR:
        # RLIMIT_NPROC counts the tasks of the program's uid. gVisor charges a
        # task to the uid it was created under: the program's first task,
        # forked by the supervisor before it took the program's uid, is not
        # counted, hence one less.
        host_pids = processes * GVISOR_HOST_PIDS_PER_PROCESS + GVISOR_SENTRY_THREADS
        return host_pids, [_ulimit("nproc", max(processes - 1, 1))]
    return processes + (HOST_SUPERVISOR_PIDS if reusable else SUPERVISOR_PIDS), []
