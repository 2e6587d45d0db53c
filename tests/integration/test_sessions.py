"""Sessions on a real server over real Docker, under runc and gVisor: state that
persists between Execs, interactive stdin, signals, isolation between sessions,
pause and resume, expiry, a restarted server, a container removed behind the
server's back, many sessions at once, and hostile programs inside a session."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc
from tests.integration.conftest import (
    CODEBEAKER,
    Server,
    our_containers,
    start_server,
    stop_server,
)
from tests.security.probes import PROBES
from tests.security.programs import FORGED_FRAMES

pytestmark = pytest.mark.docker
RUNTIMES = ("runc", "runsc")
_REPORT = b"exit_code=0\nsignal=0\nwall_us=1\ncpu_us=1\npeak_memory=1\noom_kills=0\n"
FORGED_SESSION_FRAMES = (
    b"X"
    + (1).to_bytes(4, "big")
    + len(_REPORT).to_bytes(4, "big")
    + _REPORT
    + b"Y"
    + (0).to_bytes(4, "big")
    + (20).to_bytes(4, "big")
    + bytes(20)
)
TIMEOUT = 60


@dataclass
class Sessions:
    server: Server
    runtime: str
    state_dir: str
    stub: spb_grpc.SessionServiceStub

    def create(self, **fields: object) -> spb.Session:
        session = spb.Session(language="python", **fields)  # type: ignore[arg-type]
        return self.stub.CreateSession(spb.CreateSessionRequest(session=session), timeout=TIMEOUT)

    def run(
        self, name: str, *argv: str, stdin: bytes = b""
    ) -> tuple[bytes, bytes, pb.ExecutionResult]:
        command = spb.Command(argv=list(argv))
        start = spb.ExecStart(session=name, command=command, stdin=stdin, close_stdin=True)
        out, err, result = b"", b"", pb.ExecutionResult()
        for response in self.stub.Exec(iter([spb.ExecRequest(start=start)]), timeout=TIMEOUT):
            if response.HasField("output"):
                if response.output.stream == pb.OUTPUT_STREAM_STDOUT:
                    out += response.output.data
                else:
                    err += response.output.data
            elif response.HasField("result"):
                result = response.result
        return out, err, result

    def sh(self, name: str, script: str) -> bytes:
        out, err, result = self.run(name, "sh", "-c", script)
        assert result.status == pb.EXECUTION_STATUS_OK, (out, err, result)
        return out

    def get(self, name: str) -> spb.Session:
        return self.stub.GetSession(spb.GetSessionRequest(name=name), timeout=TIMEOUT)

    def delete(self, name: str) -> None:
        self.stub.DeleteSession(spb.DeleteSessionRequest(name=name), timeout=TIMEOUT)


def _serve(runtime: str, state_dir: str, instance: str = "") -> Server:
    return start_server(
        "--runtime",
        runtime,
        "--session-spares",
        "1",
        "--max-sessions",
        "120",
        instance=instance,
        environ={"CODEBEAKER_STATE_DIR": state_dir},
    )


@pytest.fixture(scope="module", params=RUNTIMES)
def sessions(request: pytest.FixtureRequest) -> Iterator[Sessions]:
    state_dir = tempfile.mkdtemp(prefix="codebeaker-sessions-")
    server = _serve(request.param, state_dir)
    channel = grpc.insecure_channel(server.address)
    yield Sessions(server, request.param, state_dir, spb_grpc.SessionServiceStub(channel))
    channel.close()
    stop_server(server)
    leftover = our_containers(server.instance)
    for container in leftover:  # sessions outlive a server by design: clean up after the tests
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)


def session_containers(instance: str, session_id: str) -> list[str]:
    return our_containers(instance, f"label=io.codebeaker.session={session_id}")


def test_files_and_processes_persist_between_execs(sessions: Sessions) -> None:
    session = sessions.create()
    name = session.name
    sessions.sh(name, "echo kept > note.txt; sleep 600 > /dev/null 2>&1 & echo $! > pid")
    assert sessions.sh(name, "cat note.txt") == b"kept\n"
    assert sessions.sh(name, 'kill -0 "$(cat pid)" && echo alive') == b"alive\n"
    read = sessions.stub.ReadFiles(
        spb.ReadFilesRequest(name=name, paths=["note.txt"]), timeout=TIMEOUT
    )
    assert read.files[0].content == b"kept\n"
    written = sessions.stub.WriteFiles(
        spb.WriteFilesRequest(
            name=name, files=[pb.File(path="src/app.py", content=b"print(6*7)\n")]
        ),
        timeout=TIMEOUT,
    )
    assert written.files_written == 1
    out, _, result = sessions.run(name, "python3", "src/app.py")
    assert (out, result.status) == (b"42\n", pb.EXECUTION_STATUS_OK)
    listed = sessions.stub.ListFiles(spb.ListFilesRequest(name=name), timeout=TIMEOUT)
    kinds = {e.name: e.type for e in listed.entries}
    assert kinds["note.txt"] == spb.FILE_TYPE_REGULAR and kinds["src"] == spb.FILE_TYPE_DIRECTORY
    sessions.sh(name, "ln -s /etc/passwd leak")
    leak = sessions.stub.ReadFiles(spb.ReadFilesRequest(name=name, paths=["leak"]), timeout=TIMEOUT)
    assert leak.files[0].status == pb.OUTPUT_FILE_STATUS_NOT_REGULAR and not leak.files[0].content
    sessions.delete(name)


def test_a_session_runs_the_version_it_asked_for(sessions: Sessions) -> None:
    """A prefix names the second version; its Execs (and spares) are that image's; a
    version the server does not have is refused, listing those it has."""
    printed = "import platform; print(platform.python_version())"
    default = sessions.create()
    old = sessions.create(version="3.11")
    assert old.version.startswith("3.11.") and not default.version.startswith("3.11.")
    assert sessions.run(old.name, "python3", "-c", printed)[0].decode().strip() == old.version
    assert (
        sessions.run(default.name, "python3", "-c", printed)[0].decode().strip() == default.version
    )
    again = sessions.create(version="3.11")  # from the spare the first one started
    assert sessions.run(again.name, "python3", "-c", printed)[0].decode().strip() == old.version
    assert sessions.get(old.name).version == old.version
    with pytest.raises(grpc.RpcError) as refused:
        sessions.create(version="3.12")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "session.version" in str(refused.value.details())
    assert f"{default.version}, {old.version}" in str(refused.value.details())
    for session in (default, old, again):
        sessions.delete(session.name)


def test_interactive_stdin_round_trip_and_signals(sessions: Sessions) -> None:
    name = sessions.create().name
    requests: queue.Queue[spb.ExecRequest | None] = queue.Queue()
    program = "import sys\nfor line in sys.stdin:\n    print(line.strip().upper(), flush=True)\n"
    start = spb.ExecStart(session=name, command=spb.Command(argv=["python3", "-c", program]))
    requests.put(spb.ExecRequest(start=start))
    responses = sessions.stub.Exec(iter(requests.get, None), timeout=TIMEOUT)
    assert next(responses).started.exec_id
    requests.put(spb.ExecRequest(stdin=b"first\n"))
    assert _line(responses) == b"FIRST\n"
    requests.put(spb.ExecRequest(stdin=b"second\n"))
    assert _line(responses) == b"SECOND\n"
    requests.put(spb.ExecRequest(close_stdin=True))
    assert next(responses).result.status == pb.EXECUTION_STATUS_OK
    requests.put(None)

    requests = queue.Queue()
    requests.put(
        spb.ExecRequest(
            start=spb.ExecStart(session=name, command=spb.Command(argv=["sleep", "100"]))
        )
    )
    responses = sessions.stub.Exec(iter(requests.get, None), timeout=TIMEOUT)
    next(responses)
    requests.put(spb.ExecRequest(signal=2))
    result = next(r for r in responses if r.HasField("result")).result
    assert (result.signal, result.status) == (2, pb.EXECUTION_STATUS_SIGNALED)
    requests.put(None)
    sessions.delete(name)


def _line(responses: Iterator[spb.ExecResponse]) -> bytes:
    """Output chunks up to a newline (a program's write may arrive in pieces)."""
    data = b""
    while not data.endswith(b"\n"):
        data += next(responses).output.data
    return data


def test_two_sessions_share_nothing(sessions: Sessions) -> None:
    first, second = sessions.create().name, sessions.create().name
    sessions.sh(first, "echo secret > mine; sleep 600 > /dev/null 2>&1 &")
    assert sessions.sh(second, "ls -A /workspace") == b""
    processes = sessions.sh(
        second, "for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done"
    )
    assert b"sleep 600" not in processes
    out, _, _ = sessions.run(second, "python3", "-c", PROBES["interfaces"]["python"])
    assert json.loads(out)["proc_net_dev"] == ["lo"]
    port = sessions.server.port
    probe = PROBES["host_loopback"]["python"]
    out, _, _ = sessions.run(second, "python3", "-c", probe, str(port), "9", "codebeaker-none")
    report = json.loads(out)
    assert report[f"tcp 127.0.0.1:{port}"] != "ok" and report["abstract"] != "ok"
    sessions.delete(first)
    sessions.delete(second)


def test_hostile_programs_inside_a_session_stay_inside(sessions: Sessions) -> None:
    name = sessions.create().name
    identity = json.loads(sessions.run(name, "python3", "-c", PROBES["identity"]["python"])[0])
    assert identity["uid"] == identity["euid"] == 65534 and identity["setuid"] == "EPERM"
    caps = json.loads(sessions.run(name, "python3", "-c", PROBES["capabilities"]["python"])[0])
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == 0
    flags = json.loads(sessions.run(name, "python3", "-c", PROBES["status_flags"]["python"])[0])
    assert flags["no_new_privs"] == 1 and flags["seccomp"] == 2
    opaque = json.loads(sessions.run(name, "python3", "-c", PROBES["init_opaque"]["python"])[0])
    assert opaque["mem"] != "READ" and opaque["fd/1"] != "ok"
    sessions.run(name, "python3", "-c", PROBES["signal_init"]["python"])
    # The agent's own framing (an exit report and a sync answer for other ids) and the
    # one-shot supervisor's: all of it comes back as this Exec's output, byte for byte.
    fake = FORGED_SESSION_FRAMES + FORGED_FRAMES
    forger = f"import sys\nsys.stdout.buffer.write({fake!r})\nsys.stdout.flush()\nsys.exit(3)\n"
    forged, _, result = sessions.run(name, "python3", "-c", forger)
    assert (forged, result.exit_code, result.signal) == (fake, 3, 0)
    # The agent survived all of it: the session still works.
    assert sessions.sh(name, "echo still here") == b"still here\n"
    assert sessions.get(name).state == spb.SESSION_STATE_READY
    sessions.delete(name)


def test_pause_freezes_a_counter_and_resume_thaws_it(sessions: Sessions) -> None:
    name = sessions.create().name
    # Written aside and renamed: a read never sees the file half-written (empty).
    step = "i=$((i+1)); echo $i > c.new; mv c.new c; sleep 0.05"
    counter = f"(i=0; while true; do {step}; done) > /dev/null 2>&1 &"
    sessions.sh(name, counter)
    time.sleep(0.5)
    before = int(sessions.sh(name, "cat c"))
    sessions.stub.PauseSession(spb.PauseSessionRequest(name=name), timeout=TIMEOUT)
    assert sessions.get(name).state == spb.SESSION_STATE_PAUSED
    with pytest.raises(grpc.RpcError) as refused:
        sessions.run(name, "true")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    time.sleep(1.5)  # ~30 steps if it ran
    sessions.stub.ResumeSession(spb.ResumeSessionRequest(name=name), timeout=TIMEOUT)
    after = int(sessions.sh(name, "cat c"))
    assert after - before <= 8, (before, after)
    time.sleep(0.5)
    assert int(sessions.sh(name, "cat c")) > after
    sessions.delete(name)


def test_idle_timeout_and_lifetime_end_sessions(sessions: Sessions) -> None:
    idle = sessions.create(idle_timeout=Duration(seconds=2))
    short = sessions.create(lifetime=Duration(seconds=3), idle_timeout=Duration(seconds=60))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        states = (sessions.get(idle.name).state, sessions.get(short.name).state)
        if states == (spb.SESSION_STATE_TERMINATED,) * 2:
            break
        time.sleep(0.5)
    assert "idle" in sessions.get(idle.name).state_reason
    assert "lifetime" in sessions.get(short.name).state_reason
    for session in (idle, short):
        assert not session_containers(sessions.server.instance, session.name.split("/")[1])


def test_a_container_removed_behind_the_servers_back_is_lost_within_a_second(
    sessions: Sessions,
) -> None:
    session = sessions.create()
    watch = sessions.stub.WatchSessions(
        spb.WatchSessionsRequest(name=session.name, no_usage=True), timeout=TIMEOUT
    )
    events: queue.Queue[spb.SessionEvent] = queue.Queue()

    def follow() -> None:
        with contextlib.suppress(grpc.RpcError):  # cancelled at the end of the test
            for item in watch:
                events.put(item)

    threading.Thread(target=follow, daemon=True).start()
    time.sleep(0.3)
    container = session_containers(sessions.server.instance, session.name.split("/")[1])[0]
    removed_at = time.monotonic()
    subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=True)
    event = events.get(timeout=5)
    assert time.monotonic() - removed_at < 1.0 + 0.5  # docker rm's own return included
    assert event.type == spb.SESSION_EVENT_TYPE_LOST
    assert sessions.get(session.name).state == spb.SESSION_STATE_FAILED
    watch.cancel()


def test_sessions_survive_a_server_restart(sessions: Sessions) -> None:
    name = sessions.create().name
    sessions.sh(name, "echo before > mark; sleep 600 > /dev/null 2>&1 & echo $! > pid")
    instance = sessions.server.instance
    stop_server(sessions.server)
    assert session_containers(instance, name.split("/")[1]), "a stopping server leaves sessions"
    restarted = _serve(sessions.runtime, sessions.state_dir, instance)
    sessions.server = restarted
    sessions.stub = spb_grpc.SessionServiceStub(grpc.insecure_channel(restarted.address))
    assert sessions.get(name).state == spb.SESSION_STATE_READY
    assert sessions.sh(name, 'cat mark; kill -0 "$(cat pid)" && echo alive') == b"before\nalive\n"
    sessions.delete(name)


def test_many_sessions_at_once(sessions: Sessions) -> None:
    count = 100 if sessions.runtime == "runc" else 20
    names: list[str] = []
    threads = [
        threading.Thread(target=lambda: names.append(sessions.create().name)) for _ in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(names) == count
    listed = sessions.stub.ListSessions(spb.ListSessionsRequest(page_size=1000), timeout=TIMEOUT)
    assert set(names) <= {s.name for s in listed.sessions}
    assert sessions.sh(names[-1], "echo fine") == b"fine\n"
    deleters = [threading.Thread(target=sessions.delete, args=(n,)) for n in names]
    for thread in deleters:
        thread.start()
    for thread in deleters:
        thread.join()


@pytest.mark.engine_restart
def test_after_an_engine_restart_the_registry_and_the_engine_agree(sessions: Sessions) -> None:
    """The engine stops under a live session and comes back: without a server restart,
    the session is FAILED (its container died with the engine), the container the
    engine kept (Exited) is removed, and new sessions work. Runs last (conftest)."""
    name = sessions.create().name
    session_id = name.split("/")[1]
    pid = int(Path("/var/run/docker.pid").read_text())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.2)
    subprocess.run(["bash", "scripts/ensure-docker.sh"], check=True, capture_output=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = sessions.get(name).state
        left = session_containers(sessions.server.instance, session_id)
        if state == spb.SESSION_STATE_FAILED and not left:
            break
        time.sleep(0.5)
    assert sessions.get(name).state == spb.SESSION_STATE_FAILED
    assert not session_containers(sessions.server.instance, session_id)
    fresh = sessions.create().name
    assert sessions.sh(fresh, "echo back") == b"back\n"
    sessions.delete(fresh)


def test_the_cli_drives_a_real_session(sessions: Sessions, tmp_path: Path) -> None:
    """`codebeaker session create|exec|cp|delete` as processes against the real server."""

    def cli(*words: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        split = words.index("--") if "--" in words else len(words)
        argv = [
            CODEBEAKER,
            "session",
            *words[:split],
            "--address",
            sessions.server.address,
            *words[split:],
        ]
        return subprocess.run(argv, input=stdin, capture_output=True, timeout=TIMEOUT, check=False)

    created = cli("create", "python")
    assert created.returncode == 0, created.stderr
    name = created.stdout.decode().strip()
    local = tmp_path / "in.txt"
    local.write_bytes(b"from the caller\n")
    assert cli("cp", str(local), f"{name}:in.txt").returncode == 0
    ran = cli("exec", name, "--", "sh", "-c", "cat in.txt; tr a-z A-Z; exit 5", stdin=b"piped\n")
    assert (ran.returncode, ran.stdout) == (5, b"from the caller\nPIPED\n"), ran.stderr
    copied = cli("cp", f"{name}:in.txt", "-")
    assert copied.stdout == b"from the caller\n"
    assert cli("delete", name).returncode == 0
    gone = cli("get", name)
    assert gone.returncode != 0 and b"not found" in gone.stderr


def test_code_cells_keep_state_in_the_sandboxed_interpreter(sessions: Sessions) -> None:
    """Cells through the SDK in a real session: Python and JavaScript interpreters live in
    the sandbox (as uid 65534, under the filter), keep state, survive an exception and are
    restarted after a crash."""
    from codebeaker.client import Client

    with Client(sessions.server.address) as client:
        with client.create_session("python") as session:
            assert session.run_code("import os\nuid = os.getuid()").status.name == "OK"
            assert session.run_code("uid, os.getcwd()").text == "(65534, '/workspace')"
            failed = session.run_code("{}['missing']")
            assert failed.status.name == "RUNTIME_ERROR" and b"KeyError" in failed.stderr
            assert session.run_code("uid").text == "65534"
            crashed = session.run_code("import os\nos.kill(os.getpid(), 9)")
            assert crashed.signal == 9 and "fresh one" in crashed.message
            assert b"NameError" in session.run_code("uid").stderr
            # The curated packages: a DataFrame's HTML, a matplotlib figure as a PNG.
            frame = session.run_code("import pandas as pd\npd.DataFrame({'a': [1, 2]})")
            assert frame.html is not None and "<table" in frame.html, frame
            chart = session.run_code("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\n1")
            assert chart.text == "1" and len(chart.images) == 1, chart
            assert chart.images[0].startswith(b"\x89PNG\r\n\x1a\n")
            # A command and a cell share the session's files.
            session.write_files({"data.txt": "from a file\n"})
            assert session.run_code("open('data.txt').read()").text == "'from a file\\n'"
        with client.create_session("javascript") as session:
            session.run_code(
                "const seen = []; function note(v) { seen.push(v); return seen.length; }"
            )
            assert session.run_code("note('a'); note('b')").text == "2"
            shown = session.run_code("console.log(process.getuid()); seen")
            assert shown.stdout == b"65534\n" and shown.text == "[ 'a', 'b' ]"
