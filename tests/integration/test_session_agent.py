"""The session agent (`cb-supervisor --session`, PROTOCOL.md § Session mode) driven
directly over its frame streams, in a real container under runc and gVisor.

One container per runtime serves the whole module, hardened as a one-shot run's
(read-only root, tmpfs workspace, no capability but gVisor's three, no network); the
test is the server: it writes frames to the container's stdin and reads the agent's
from its stdout. Every test uses ids of its own, so the tests share the agent as
concurrent clients of one session would.
"""

from __future__ import annotations

import itertools
import os
import secrets
import struct
import subprocess
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import pytest

pytestmark = pytest.mark.docker

IMAGE = f"codebeaker/python:{os.environ.get('CODEBEAKER_IMAGE_TAG', 'latest')}"
ENV = ("PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/workspace", "LANG=C.UTF-8")
WAIT = 30.0  # seconds for any one frame (gVisor on a loaded machine)
HARDENING = (
    *("--network", "none", "--read-only"),
    *("--tmpfs", "/workspace:rw,exec,uid=65534,gid=65534,size=64m"),
    *("--tmpfs", "/tmp:rw,size=64m"),
    *("--cap-drop", "ALL", "--security-opt", "no-new-privileges"),
    *("--workdir", "/workspace", "--entrypoint", "/usr/local/bin/cb-supervisor"),
)
RUNTIMES = {
    "runc": ("--user", "65534:65534"),
    "runsc": (
        *("--runtime", "runsc", "--user", "0:0"),
        *("--cap-add", "SETUID", "--cap-add", "SETGID", "--cap-add", "SETPCAP"),
    ),
}
MAX_FRAME = (16 << 20) + 65536
LISTED = -1  # Agent.frames key of the L frames
_ids = itertools.count(1)


def new_id() -> int:
    return next(_ids)


@dataclass
class Frame:
    type: str
    id: int
    payload: bytes


def lp(data: str | bytes) -> bytes:
    """A u32-length-prefixed string."""
    raw = data.encode() if isinstance(data, str) else data
    return struct.pack(">I", len(raw)) + raw


class ExecOptions(TypedDict, total=False):
    env: Sequence[str]
    cwd: str
    flags: int  # bit 0: close stdin at once; bit 1: detached
    wall_ms: int
    cpu_ms: int
    output_cap: int


def start_payload(argv: Sequence[str], **options: Unpack[ExecOptions]) -> bytes:
    """An `s` frame's payload."""
    env = options.get("env", ENV)
    limits = (options.get(key, 0) for key in ("flags", "wall_ms", "cpu_ms", "output_cap"))
    return (
        struct.pack(">IQQQ", *limits)
        + lp(options.get("cwd", ""))
        + struct.pack(">I", len(argv))
        + b"".join(lp(a) for a in argv)
        + struct.pack(">I", len(env))
        + b"".join(lp(e) for e in env)
    )


@dataclass
class Ended:
    """What an Exec sent: its pid, output, acknowledgements, and its X report or F message."""

    pid: int = 0
    stdout: bytes = b""
    stderr: bytes = b""
    acked: list[int] = field(default_factory=list)
    report: dict[str, int] = field(default_factory=dict)
    failure: str | None = None


class Agent:
    """The test's side of one agent: frames out on stdin, frames in from stdout by id."""

    def __init__(self, runtime: str) -> None:
        self.name = f"cb-session-agent-test-{os.getpid()}-{runtime}-{time.monotonic_ns()}"
        command = ["docker", "run", "-i", "--rm", "--name", self.name, *HARDENING]
        command += [*RUNTIMES[runtime], IMAGE, "--session"]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.frames: dict[int, deque[Frame]] = {}
        self.changed = threading.Condition()
        self.closed = False
        self.diagnostics: list[bytes] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            head = stream.read(9)
            if len(head) < 9:
                break
            kind, frame_id, length = struct.unpack(">BII", head)
            payload = stream.read(length)
            if len(payload) < length:
                break
            # L frames (after a Y) go to a queue of their own: they answer a hello.
            queue = LISTED if chr(kind) == "L" else frame_id
            with self.changed:
                self.frames.setdefault(queue, deque()).append(Frame(chr(kind), frame_id, payload))
                self.changed.notify_all()
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in iter(self.process.stderr.readline, b""):
            self.diagnostics.append(line)

    def send(self, kind: str, frame_id: int, payload: bytes = b"") -> None:
        self.send_raw(struct.pack(">BII", ord(kind), frame_id, len(payload)) + payload)

    def send_raw(self, data: bytes) -> None:
        assert self.process.stdin is not None
        with self.lock:
            self.process.stdin.write(data)
            self.process.stdin.flush()

    def next(self, frame_id: int, timeout: float = WAIT) -> Frame:
        """The next frame of this id, in order."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while not self.frames.get(frame_id):
                left = deadline - time.monotonic()
                if self.closed or left <= 0:
                    raise AssertionError(
                        f"no frame for id {frame_id} (agent stderr: {b''.join(self.diagnostics)!r})"
                    )
                self.changed.wait(left)
            return self.frames[frame_id].popleft()

    def pending(self, frame_id: int) -> list[Frame]:
        with self.changed:
            return list(self.frames.get(frame_id, ()))

    def start(self, frame_id: int, argv: Sequence[str], **options: Unpack[ExecOptions]) -> int:
        """Start an Exec; its pid (from S)."""
        self.send("s", frame_id, start_payload(argv, **options))
        frame = self.next(frame_id)
        assert frame.type == "S", frame
        return int(struct.unpack(">I", frame.payload)[0])

    def follow(self, frame_id: int, ended: Ended | None = None, timeout: float = WAIT) -> Ended:
        """Frames of an Exec up to its X (or F)."""
        ended = ended or Ended()
        while True:
            frame = self.next(frame_id, timeout)
            if frame.type == "S":
                ended.pid = struct.unpack(">I", frame.payload)[0]
            elif frame.type == "1":
                ended.stdout += frame.payload
            elif frame.type == "2":
                ended.stderr += frame.payload
            elif frame.type == "A":
                ended.acked.append(struct.unpack(">I", frame.payload)[0])
            elif frame.type == "X":
                ended.report = parse_keys(frame.payload)
                return ended
            elif frame.type == "F":
                ended.failure = frame.payload.decode()
                return ended
            else:
                raise AssertionError(f"unexpected frame {frame}")

    def run(self, argv: Sequence[str], **options: Unpack[ExecOptions]) -> Ended:
        frame_id = new_id()
        self.send("s", frame_id, start_payload(argv, **options))
        return self.follow(frame_id)

    def sh(self, script: str, **options: Unpack[ExecOptions]) -> Ended:
        done = self.run(["sh", "-c", script], **options)
        assert done.report.get("exit_code") == 0, done
        return done

    def request(self, kind: str, payload: bytes = b"") -> list[Frame]:
        """A file or usage request: its frames up to K, U or F (included)."""
        frame_id = new_id()
        self.send(kind, frame_id, payload)
        frames = []
        while True:
            frame = self.next(frame_id)
            frames.append(frame)
            if frame.type in "KUF":
                return frames

    def hello(self) -> tuple[int, list[Frame]]:
        """h with a fresh nonce: the Y count and the L frames after it."""
        nonce = secrets.token_bytes(16)
        self.send("h", new_id(), nonce)
        while True:  # frames of id 0 other than our Y would be stale
            frame = self.next(0)
            if frame.type == "Y" and frame.payload[:16] == nonce:
                break
        (count,) = struct.unpack(">I", frame.payload[16:])
        return count, [self.next(LISTED) for _ in range(count)]

    def stop(self) -> None:
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, check=False)
        self.process.kill()
        self.process.wait(timeout=30)


def parse_keys(payload: bytes) -> dict[str, int]:
    pairs = (line.split("=", 1) for line in payload.decode().splitlines() if line)
    return {key: int(value) for key, value in pairs}


REPORT_KEYS = {
    "exit_code",
    "signal",
    "wall_us",
    "cpu_us",
    "peak_memory",
    "oom_kills",
    "oom_counted",
    "wall_limit",
    "cpu_limit",
    "stdout_truncated",
    "stderr_truncated",
}


@pytest.fixture(scope="module", params=list(RUNTIMES))
def agent(request: pytest.FixtureRequest) -> Iterator[Agent]:
    running = Agent(request.param)
    try:
        running.hello()  # it is up and answering
        yield running
    finally:
        running.stop()


# ---------- Execs ----------


def test_an_exec_reports_every_key_and_its_output(agent: Agent) -> None:
    done = agent.run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert done.failure is None
    assert done.pid > 1
    assert (done.stdout, done.stderr) == (b"out\n", b"err\n")
    assert set(done.report) == REPORT_KEYS
    assert done.report["exit_code"] == 3 and done.report["signal"] == 0
    assert done.report["wall_limit"] == done.report["cpu_limit"] == 0


def test_two_execs_run_at_once_with_interleaved_output(agent: Agent) -> None:
    slow = new_id()
    agent.start(
        slow,
        ["python3", "-c", "import time; print('a1', flush=True); time.sleep(2); print('a2')"],
    )
    first = agent.next(slow)
    assert (first.type, first.payload) == ("1", b"a1\n")
    # The second Exec starts, runs and ends while the first one sleeps.
    done = agent.run(["echo", "b1"])
    assert done.stdout == b"b1\n" and done.report["exit_code"] == 0
    assert not [f for f in agent.pending(slow) if f.type == "X"]
    rest = agent.follow(slow)
    assert rest.stdout == b"a2\n" and rest.report["exit_code"] == 0


def test_interactive_stdin_is_answered_line_by_line(agent: Agent) -> None:
    frame_id = new_id()
    program = "import sys\nfor line in sys.stdin:\n    print(line.upper(), end='', flush=True)"
    agent.start(frame_id, ["python3", "-c", program])
    for line in (b"hello\n", b"again\n"):
        agent.send("i", frame_id, line)
        got = [agent.next(frame_id), agent.next(frame_id)]  # A and the reply, in either order
        assert sorted((f.type, f.payload) for f in got) == [
            ("1", line.upper()),
            ("A", struct.pack(">I", len(line))),
        ]
    agent.send("c", frame_id)
    done = agent.follow(frame_id)
    assert done.report["exit_code"] == 0 and done.stdout == b""


def test_stdin_closed_at_once_reads_eof(agent: Agent) -> None:
    done = agent.run(["python3", "-c", "import sys; print(len(sys.stdin.read()))"], flags=1)
    assert done.stdout == b"0\n"


def test_a_background_process_outlives_its_exec_which_ends_promptly(agent: Agent) -> None:
    began = time.monotonic()
    done = agent.sh("sleep 30 & echo $!")
    assert time.monotonic() - began < 5  # the agent stops waiting for the pipe 100 ms after exit
    background = int(done.stdout)
    check = agent.sh(f"kill -0 {background} && echo alive && kill {background}")
    assert check.stdout == b"alive\n"


def test_a_signal_reaches_the_program(agent: Agent) -> None:
    frame_id = new_id()
    agent.start(frame_id, ["sleep", "100"])
    agent.send("k", frame_id, struct.pack(">I", 2))
    done = agent.follow(frame_id)
    assert done.report["signal"] == 2 and done.report["exit_code"] == 130


def test_the_wall_limit_kills_the_program(agent: Agent) -> None:
    done = agent.run(["sleep", "100"], wall_ms=500)
    assert done.report["wall_limit"] == 1 and done.report["signal"] == 9
    assert 500_000 <= done.report["wall_us"] < 10_000_000


def test_the_cpu_limit_kills_the_program(agent: Agent) -> None:
    done = agent.run(["python3", "-c", "while True: pass"], cpu_ms=300, wall_ms=20_000)
    assert done.report["cpu_limit"] == 1 and done.report["wall_limit"] == 0
    assert done.report["cpu_us"] >= 300_000


def test_the_output_cap_forwards_exactly_the_cap(agent: Agent) -> None:
    done = agent.run(["yes"], output_cap=1000)
    assert done.stdout == b"y\n" * 500
    assert done.report["stdout_truncated"] == 1 and done.report["stderr_truncated"] == 0
    assert done.report["signal"] == 9


def test_a_missing_command_starts_and_exits_127(agent: Agent) -> None:
    done = agent.run(["no-such-command-here"])
    assert done.failure is None and done.pid > 0
    assert done.report["exit_code"] == 127


def test_the_working_directory(agent: Agent) -> None:
    assert [f.type for f in agent.request("w", struct.pack(">I", 0o644) + lp("sub/x"))] == ["K"]
    assert agent.run(["pwd"], cwd="sub").stdout == b"/workspace/sub\n"
    assert agent.run(["pwd"]).stdout == b"/workspace\n"
    for bad in ("../", "/tmp", "sub/../..", "missing"):
        done = agent.run(["pwd"], cwd=bad)
        assert done.failure is not None and not done.pid, (bad, done)


def test_stdin_sent_before_close_is_written_first(agent: Agent) -> None:
    frame_id = new_id()
    agent.start(frame_id, ["cat"])
    agent.send("i", frame_id, b"abc")
    agent.send("i", frame_id, b"")
    agent.send("c", frame_id)
    agent.send("i", frame_id, b"late")  # after the close: dropped
    done = agent.follow(frame_id)
    assert done.stdout == b"abc" and done.acked == [3, 0, 4]
    # Frames for an Exec that ended get no reply (its id may be a new Exec's by then).
    agent.send("k", frame_id, struct.pack(">I", 9))
    agent.send("c", frame_id)
    agent.send("i", frame_id, b"gone")
    assert agent.request("u")[0].type == "U"  # served after them: any reply came first
    assert agent.pending(frame_id) == []


def test_a_partial_frame_does_not_hold_up_the_other_execs(agent: Agent) -> None:
    frame_id, usage_id = new_id(), new_id()
    program = "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.2)"
    agent.start(frame_id, ["python3", "-c", program])
    head = struct.pack(">BII", ord("u"), usage_id, 0)
    agent.send_raw(head[:4])
    done = agent.follow(frame_id)  # all of its output and its end while the header is cut
    assert done.stdout == b"0\n1\n2\n"
    agent.send_raw(head[4:])
    assert agent.next(usage_id).type == "U"


def test_at_most_64_execs_run_at_once(agent: Agent) -> None:
    running, _ = agent.hello()
    ids = [new_id() for _ in range(64 - running)]
    for frame_id in ids:
        agent.send("s", frame_id, start_payload(["sleep", "100"]))
    for frame_id in ids:
        assert agent.next(frame_id).type == "S"
    one_more = agent.run(["true"])
    assert one_more.failure is not None and "too many" in one_more.failure
    for frame_id in ids:
        agent.send("k", frame_id, struct.pack(">I", 9))
    for frame_id in ids:
        assert agent.follow(frame_id).report["signal"] == 9
    assert agent.run(["true"]).report["exit_code"] == 0


def test_a_running_execs_id_is_refused_and_kept(agent: Agent) -> None:
    frame_id = new_id()
    agent.start(frame_id, ["sleep", "100"])
    agent.send("s", frame_id, start_payload(["true"]))
    refused = agent.next(frame_id)
    assert refused.type == "F" and b"running" in refused.payload
    agent.send("k", frame_id, struct.pack(">I", 9))
    assert agent.follow(frame_id).report["signal"] == 9


def test_too_much_unacknowledged_stdin_ends_the_exec(agent: Agent) -> None:
    frame_id = new_id()
    agent.start(frame_id, ["sleep", "100"])  # never reads its stdin
    for _ in range(8):  # 512 KiB: the pipe holds at most 64 KiB of it
        agent.send("i", frame_id, b"x" * 65536)
    done = agent.follow(frame_id)
    assert done.failure is not None and "unacknowledged" in done.failure
    assert sum(done.acked) <= 65536 * 2
    assert agent.run(["true"]).report["exit_code"] == 0


def test_hello_answers_with_its_nonce_and_lists_running_execs(agent: Agent) -> None:
    frame_id = new_id()
    pid = agent.start(frame_id, ["sleep", "100"], flags=2)
    count, listed = agent.hello()
    assert count == len(listed) >= 1
    mine = [f for f in listed if f.id == frame_id]
    assert [struct.unpack(">II", f.payload) for f in mine] == [(pid, 2)]
    agent.send("k", frame_id, struct.pack(">I", 15))
    assert agent.follow(frame_id).report["signal"] == 15


# ---------- files ----------


def write(agent: Agent, path: str, content: bytes, mode: int = 0o644) -> Frame:
    frames = agent.request("w", struct.pack(">I", mode) + lp(path) + content)
    assert len(frames) == 1
    return frames[0]


def read(agent: Agent, *patterns: str, file_cap: int = 1 << 20) -> list[tuple[bytes, bytes]]:
    """(header fields status+type, path) and content per H of an r request."""
    payload = struct.pack(">QQI", file_cap, 1 << 24, len(patterns))
    frames = agent.request("r", payload + b"".join(lp(p) for p in patterns))
    assert frames[-1].type == "K", frames
    files: list[tuple[bytes, bytes]] = []
    for frame in frames[:-1]:
        if frame.type == "H":
            files.append((frame.payload[:2] + frame.payload[10:], b""))
        else:
            assert frame.type == "D"
            files[-1] = (files[-1][0], files[-1][1] + frame.payload)
    return files


def listing(agent: Agent, path: str) -> tuple[list[tuple[str, str, int, int]], int]:
    """(type, name, mode, size) per entry, and the truncated flag."""
    frames = agent.request("l", path.encode())
    assert frames[-1].type == "K", frames
    entries = []
    for frame in frames[:-1]:
        assert frame.type == "N"
        data = frame.payload
        while data:
            kind, mode, size, _s, _ns, length = struct.unpack(">BIQQIH", data[:27])
            entries.append((chr(kind), data[27 : 27 + length].decode(), mode, size))
            data = data[27 + length :]
    return entries, frames[-1].payload[0]


def test_files_are_written_replaced_read_and_listed(agent: Agent) -> None:
    assert write(agent, "files/b.txt", b"old content").type == "K"
    assert write(agent, "files/b.txt", b"new", mode=0o600).type == "K"
    assert write(agent, "files/a.sh", b"#!/bin/sh\necho hi\n", mode=0o755).type == "K"
    assert sorted(read(agent, "files/*")) == [
        (b"rffiles/a.sh", b"#!/bin/sh\necho hi\n"),
        (b"rffiles/b.txt", b"new"),
    ]
    assert read(agent, "files/b.txt", file_cap=2) == [(b"tffiles/b.txt", b"ne")]
    assert read(agent, "files/none") == [(b"m-files/none", b"")]
    entries, truncated = listing(agent, "files")
    assert entries == [("f", "a.sh", 0o755, 18), ("f", "b.txt", 0o600, 3)] and truncated == 0
    assert agent.run(["./files/a.sh"]).stdout == b"hi\n"


def test_a_symlink_planted_by_a_program_is_never_followed(agent: Agent) -> None:
    agent.sh("mkdir trap && ln -s /etc/passwd trap/file && ln -s /tmp trap/dir && mkfifo trap/fifo")
    for path in ("trap/file", "trap/dir/x", "trap/fifo"):
        refused = write(agent, path, b"owned")
        assert refused.type == "F", (path, refused)
    assert sorted(read(agent, "trap/*")) == [
        (b"nltrap/dir", b""),
        (b"nltrap/file", b""),
        (b"nptrap/fifo", b""),
    ]
    entries, _ = listing(agent, "trap")
    assert [(kind, name) for kind, name, _, _ in entries] == [
        ("l", "dir"),
        ("p", "fifo"),
        ("l", "file"),
    ]
    assert agent.request("l", b"trap/dir")[-1].type == "F"
    assert agent.request("l", b"../")[-1].type == "F"
    assert agent.sh("ls /tmp | wc -l; head -c 4 /etc/passwd").stdout == b"0\nroot"


def test_usage(agent: Agent) -> None:
    assert write(agent, "usage/big", b"\0" * (1 << 20)).type == "K"
    (frame,) = agent.request("u")
    assert frame.type == "U"
    usage = parse_keys(frame.payload)
    assert set(usage) == {"disk_bytes", "processes", "execs"}
    assert usage["disk_bytes"] >= 1 << 20
    assert usage["processes"] >= 0 and usage["execs"] >= 0


# ---------- bad frames ----------


def test_malformed_frames_are_refused_and_the_agent_lives_on(agent: Agent) -> None:
    for kind, payload in [
        ("z", b""),
        ("s", b"\0\0"),
        ("s", start_payload([])),
        ("s", start_payload(["true"], env=["NOEQUALS"])),
        ("s", start_payload(["true"]) + b"extra"),
        ("w", struct.pack(">I", 0o644) + lp("/abs")),
        ("w", struct.pack(">I", 0o644) + lp("a/../b")),
        ("r", b"\0"),
        ("u", b"x"),
        ("h", b"short"),
    ]:
        frame_id = new_id()
        agent.send(kind, frame_id, payload)
        got = agent.next(frame_id)
        assert got.type == "F", (kind, payload, got)
    assert agent.run(["true"]).report["exit_code"] == 0


def test_a_frame_over_the_limit_is_refused_and_skipped(agent: Agent) -> None:
    frame_id = new_id()
    agent.send("w", frame_id, b"\0" * (MAX_FRAME + 1))
    got = agent.next(frame_id)
    assert got.type == "F" and b"limit" in got.payload
    assert agent.hello()[0] >= 0
    assert agent.run(["true"]).report["exit_code"] == 0
