"""One real server per OCI runtime and isolation, and the host invariants every
hostile case ends with.

Each case runs through the `sandbox` fixture, on reusable hosts (`--isolation
host`, each run in fresh nested namespaces) under runc and runsc, and on one
container per run (`--isolation container`) under runc. When the case is over,
whatever its verdict, `assert_host_clean` checks from outside the sandbox that:

- every single-use container the server created during the case is gone (the
  container server runs with --pool-size 0, so they are all the case's; and
  when the session ends no container of the server's instance may remain),
  and how long that took after the verdict (the teardown time, reported at the
  end); a host retired after the case is gone too;
- no host process is left in those containers' cgroups or names them on its
  command line (under runc the program's own processes, uid 65534, which
  cannot leave their cgroup; under runsc the gVisor sandbox, gofer and shim).
  Processes are matched by container rather than by uid because other
  sandboxes on this shared machine run as uid 65534 too; in a host still in
  service under runc, only its supervisors are left (no process of the run);
- the service still answers grpc.health.v1 with SERVING;
- the next benign run is normal (right output, OK), and its container goes too.

The containers of a case are learnt from the engine's own events (create
events carrying the server's owner label, followed live), not from anything
the program says, so the check holds even for programs that print nothing. The servers
are started by the integration suite's `start_server`, which puts a secret
(`CODEBEAKER_TEST_SECRET`) in their environment for the reach cases to look for.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.integration.conftest import Server, our_containers, start_server, stop_server
from tests.security.probes import PROBES
from tests.security.programs import PROGRAMS

pytestmark = pytest.mark.docker
RUNTIMES = ["runc", "runsc"]
SERVERS = {
    "runc-host": ("runc", "host"),
    "runsc-host": ("runsc", "host"),
    "runc-container": ("runc", "container"),
}
HOST_LABEL = "label=io.codebeaker.execution=host"
HOST_SUPERVISOR = "/usr/local/bin/cb-supervisor --host"
LANGUAGES = ["python", "javascript"]
OWNER_LABEL = "io.codebeaker.owner"
RPC_TIMEOUT = 120.0
TEARDOWN_BUDGET = 30.0  # generous: the machine is shared and noisy
# Every case's teardown time and verdict, for the summary at the end.
TEARDOWNS: list[tuple[float, str, str]] = []
VERDICTS: list[tuple[str, str, str]] = []


def _timestamp(ns: int) -> str:
    return f"{ns // 10**9}.{ns % 10**9:09d}"


class CreatedContainers:
    """The engine's create events for one server instance, followed live.

    The engine keeps only its last 256 events for later queries, which other
    work on a shared engine can push out within seconds, so the events are
    followed from before the server starts rather than asked for afterwards.
    """

    def __init__(self, instance: str) -> None:
        self._seen: list[tuple[int, str, str]] = []  # when, id, its execution label
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [
                "docker",
                "events",
                "--since",
                _timestamp(time.time_ns()),
                "--filter",
                "type=container",
                "--filter",
                "event=create",
                "--filter",
                f"label={OWNER_LABEL}={instance}",
                "--format",
                '{{.TimeNano}} {{.ID}} {{index .Actor.Attributes "io.codebeaker.execution"}}',
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            when, container, *execution = line.decode().split()
            with self._lock:
                self._seen.append((int(when), container, " ".join(execution)))

    def between(self, since_ns: int, until_ns: int, *, for_requests: bool = False) -> list[str]:
        """Containers created in that window; `for_requests`: only those made for a
        request (not a reusable host or a pooled one, which a pool may launch any time)."""
        ahead = ("host", "pooled") if for_requests else ()
        with self._lock:
            return [
                cid
                for when, cid, execution in self._seen
                if since_ns <= when <= until_ns and execution not in ahead
            ]

    def close(self) -> None:
        self._process.terminate()
        self._process.wait(timeout=30)


@dataclass
class HostileServer:
    runtime: str
    isolation: str
    server: Server
    channel: grpc.Channel
    stub: pb_grpc.ExecutionServiceStub
    created: CreatedContainers


@pytest.fixture(scope="session", params=list(SERVERS))
def hostile_server(request: pytest.FixtureRequest) -> Iterator[HostileServer]:
    """A `codebeaker serve` on reusable hosts, or with one container per run and no
    warm pool (so that every container belongs to one case)."""
    runtime, isolation = SERVERS[str(request.param)]
    instance = f"security-{runtime}-{isolation}-{os.getpid()}-{time.monotonic_ns()}"
    created = CreatedContainers(instance)
    options = ["--runtime", runtime, "--isolation", isolation, "--pool-size", "0"]
    if isolation == "host":
        options += ["--pool-languages", ",".join(LANGUAGES)]
    server = start_server(*options, instance=instance)
    channel = grpc.insecure_channel(server.address)
    stub = pb_grpc.ExecutionServiceStub(channel)
    yield HostileServer(runtime, isolation, server, channel, stub, created)
    channel.close()
    created.close()
    assert stop_server(server) == 0
    assert our_containers(server.instance) == []


@pytest.fixture
def runtime(hostile_server: HostileServer) -> str:
    return hostile_server.runtime


@pytest.fixture
def isolation(hostile_server: HostileServer) -> str:
    return hostile_server.isolation


def known_weakness(
    request: pytest.FixtureRequest, runtime: str, runtimes: Sequence[str], reason: str
) -> None:
    """Mark this case as an expected failure under `runtimes`: a sandbox weakness
    the core has to fix (strict, so the fix shows up as a failure to remove it)."""
    if runtime in runtimes:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


def _duration(seconds: float | None) -> Duration | None:
    if seconds is None:
        return None
    return Duration(seconds=int(seconds), nanos=round(seconds % 1 * 1e9))


def limits(
    *,
    wall: float | None = None,
    cpu: float | None = None,
    memory: int = 0,
    processes: int = 0,
    output: int = 0,
) -> pb.ResourceLimits:
    """ResourceLimits in seconds and bytes; unset (0, None) means the server's default."""
    return pb.ResourceLimits(
        wall_time=_duration(wall),
        cpu_time=_duration(cpu),
        memory_bytes=memory,
        max_processes=processes,
        max_output_bytes=output,
    )


def host_processes_of(container_ids: Sequence[str], inside_only: bool = False) -> list[str]:
    """Host processes in one of these containers' cgroups or (unless `inside_only`)
    naming one of them on their command line (the shim, gVisor's sandbox)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cgroup = (entry / "cgroup").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # it exited while we looked
            continue
        if any(cid in cgroup or (cid in cmdline and not inside_only) for cid in container_ids):
            found.append(f"pid {entry.name}: {cmdline[:160]}")
    return found


def poll(check: Callable[[], list[str]], within: float) -> list[str]:
    """Call `check` until it returns nothing or `within` seconds pass (an outside observer)."""
    deadline = time.monotonic() + within
    while True:
        left = check()
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)


@dataclass
class Sandbox:
    """Runs programs on one server for one case, then checks the host."""

    hostile: HostileServer
    case: str
    started_ns: int = field(default_factory=time.time_ns)
    language: str = "python"
    verdict_at: float | None = None
    ran: bool = False  # a program was started, so a container must have existed

    @property
    def stub(self) -> pb_grpc.ExecutionServiceStub:
        return self.hostile.stub

    @property
    def server(self) -> Server:
        return self.hostile.server

    def spec(
        self,
        language: str,
        source: str | bytes,
        *,
        limits: pb.ResourceLimits | None = None,
        stdin: bytes = b"",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        version: str = "",
    ) -> pb.ExecutionSpec:
        self.language = language
        data = source.encode() if isinstance(source, str) else source
        return pb.ExecutionSpec(
            language=language,
            version=version,
            source=data,
            stdin=stdin,
            args=args,
            env=env or {},
            limits=limits,
        )

    def run(self, language: str, source: str | bytes, **options: object) -> pb.ExecutionResult:
        """Execute (unary) and return the result; RPC errors propagate."""
        spec = self.spec(language, source, **options)  # type: ignore[arg-type]
        return self.execute(spec)

    def program(self, name: str, language: str, **options: object) -> pb.ExecutionResult:
        return self.run(language, PROGRAMS[name][language], **options)

    def probe(self, name: str, language: str = "python", **options: object) -> dict[str, Any]:
        """Run a probe (probes.py); it must exit normally. Returns its JSON report."""
        result = self.run(language, PROBES[name][language], **options)
        assert result.status == pb.EXECUTION_STATUS_OK, result
        report: dict[str, Any] = json.loads(result.stdout)
        return report

    def execute(self, spec: pb.ExecutionSpec) -> pb.ExecutionResult:
        try:
            response = self.stub.Execute(pb.ExecuteRequest(spec=spec), timeout=RPC_TIMEOUT)
        except grpc.RpcError as error:
            self.verdict_at = time.monotonic()  # an error is this case's answer
            VERDICTS.append((self.case, self.hostile.runtime, f"RPC {error.code().name}"))
            raise
        return self._verdict(response.result)

    def stream(self, spec: pb.ExecutionSpec) -> tuple[bytes, bytes, pb.ExecutionResult]:
        """ExecuteStream: (stdout, stderr) as streamed, and the result."""
        out: dict[int, list[bytes]] = {pb.OUTPUT_STREAM_STDOUT: [], pb.OUTPUT_STREAM_STDERR: []}
        result = None
        for event in self.stub.ExecuteStream(
            pb.ExecuteStreamRequest(spec=spec), timeout=RPC_TIMEOUT
        ):
            if event.WhichOneof("event") == "output":
                out[event.output.stream].append(event.output.data)
            elif event.WhichOneof("event") == "result":
                result = event.result
        assert result is not None, "the stream ended without a result"
        self._verdict(result)
        stdout, stderr = (b"".join(out[s]) for s in sorted(out))
        return stdout, stderr, result

    def _verdict(self, result: pb.ExecutionResult) -> pb.ExecutionResult:
        self.verdict_at = time.monotonic()
        self.ran = True
        status = pb.ExecutionStatus.Name(result.status).removeprefix("EXECUTION_STATUS_")
        VERDICTS.append((self.case, self.hostile.runtime, status))
        return result

    def mark_ended(self) -> None:
        """For cases that end a run themselves (a cancelled stream)."""
        self.verdict_at = time.monotonic()
        self.ran = True

    def created(self, *, for_requests: bool = False) -> list[str]:
        return self.hostile.created.between(
            self.started_ns, time.time_ns(), for_requests=for_requests
        )

    def assert_host_clean(self) -> None:
        reusing = self.hostile.isolation == "host"  # a run need not create a container
        if self.ran and not reusing:  # its create event may still be on its way to us
            poll(lambda: [] if self.created() else ["none yet"], 10.0)
        created = self.created()
        if self.ran and not reusing:
            assert created, "the engine reported no container for a program that ran"
        left = poll(lambda: self._existing(created, but_hosts=reusing), TEARDOWN_BUDGET)
        if self.verdict_at is not None:
            gone_after = time.monotonic() - self.verdict_at
            TEARDOWNS.append((gone_after, self.case, self.hostile.runtime))
        assert not left, f"containers outlived their execution: {self._diagnose(left)}"
        gone = [cid for cid in created if cid not in self._existing(created)]
        alive = poll(lambda: host_processes_of(gone), 15.0)
        assert not alive, f"host processes of the sandbox survived: {alive}"
        if reusing and self.hostile.runtime == "runc":
            runs = poll(self._run_processes_in_hosts, 15.0)
            assert not runs, f"a run's processes outlived it in a host: {runs}"
        health = health_pb2_grpc.HealthStub(self.hostile.channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        self.started_ns = time.time_ns()
        hello = pb.ExecutionSpec(
            language=self.language, source=PROGRAMS["hello"][self.language].encode()
        )
        after = self.stub.Execute(pb.ExecuteRequest(spec=hello), timeout=RPC_TIMEOUT).result
        assert after.status == pb.EXECUTION_STATUS_OK, after
        assert (after.stdout, after.stderr) == (b"hello, world\n", b"")
        if not reusing:
            poll(lambda: [] if self.created() else ["none yet"], 10.0)
        left = poll(lambda: self._existing(self.created(), but_hosts=reusing), TEARDOWN_BUDGET)
        assert not left, f"the benign run's container outlived it: {self._diagnose(left)}"

    def _existing(self, containers: Sequence[str], but_hosts: bool = False) -> list[str]:
        """Which of `containers` still exist (leaving out hosts in service, if asked)."""
        hosts = set(our_containers(self.server.instance, HOST_LABEL, "status=running"))
        return [
            cid
            for cid in our_containers(self.server.instance)
            if cid in containers and not (but_hosts and cid in hosts)
        ]

    def _run_processes_in_hosts(self) -> list[str]:
        """Host processes in a host in service that are not its supervisors (runc)."""
        hosts = our_containers(self.server.instance, HOST_LABEL, "status=running")
        return [p for p in host_processes_of(hosts, inside_only=True) if HOST_SUPERVISOR not in p]

    def _diagnose(self, containers: Sequence[str]) -> str:
        """The engine's view of leftover containers and what the server logged of them."""
        lines = []
        for cid in containers:
            state = subprocess.run(
                ["docker", "inspect", "--format", "{{json .State}} {{.HostConfig.Runtime}}", cid],
                capture_output=True,
                timeout=60,
            )
            lines.append(f"{cid[:12]}: {state.stdout.decode().strip()}")
            lines += [line.strip() for line in self.server.log if cid[:12] in line]
        return "\n".join(lines)


@pytest.fixture
def sandbox(hostile_server: HostileServer, request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    box = Sandbox(hostile_server, request.node.nodeid.split("::")[-1])
    yield box
    box.assert_host_clean()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TEARDOWNS:
        return
    worst = sorted(TEARDOWNS, reverse=True)[:5]
    terminalreporter.section("security suite: teardown after the verdict")
    for seconds, case, runtime in worst:
        terminalreporter.write_line(f"{seconds:6.2f}s  {runtime:5}  {case}")
    if terminalreporter.verbosity > 0 or os.environ.get("CODEBEAKER_SECURITY_VERDICTS"):
        terminalreporter.section("security suite: verdicts")
        for case, runtime, status in VERDICTS:
            terminalreporter.write_line(f"{runtime:5}  {status:24}  {case}")
