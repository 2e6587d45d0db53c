"""A session backend whose sandboxes are in-memory fake agents, for unit tests of
the session manager and service (the real agent is tested against real
containers in tests/integration).

Each fake agent speaks PROTOCOL.md § Session mode. Its "programs":
  echo WORDS...   print the words (+ newline), exit 0
  cat             copy stdin to stdout until stdin closes, exit 0
  upper           like cat, upper-cased
  sleep SECONDS   sleep; a signal ends it with that signal
  python3|node    a real interpreter on the host (the cell kernels), its stdio piped
  exit CODE       exit with CODE
  spam N          N bytes of "x" on stdout
Files live in a dict; a paused agent answers nothing until resumed; removing a
sandbox ends its stream and reports a "destroy" event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import struct
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from codebeaker.runtimes.backend import HostEnd
from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.errors import EngineUnavailable
from codebeaker.runtimes.sessions import wire
from codebeaker.runtimes.sessions.backend import (
    SandboxEvent,
    SandboxListing,
    SandboxUsage,
    SessionLimits,
    SessionSandbox,
)
from codebeaker.runtimes.sessions.wire import Reply, Request

REPORT = (
    "exit_code={code}\nsignal={sig}\nwall_us=1000\ncpu_us=500\npeak_memory=4096\noom_kills=0\n"
    "oom_counted=1\nwall_limit={wall}\ncpu_limit=0\nstdout_truncated=0\nstderr_truncated=0\n"
)


def _frame(kind: Reply, ident: int, payload: bytes = b"") -> bytes:
    return wire.HEADER.pack(kind.value, ident, len(payload)) + payload


@dataclass
class _Program:
    stdin: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    signalled: asyncio.Future[int] = field(default_factory=asyncio.Future)
    signals: asyncio.Queue[int] = field(default_factory=asyncio.Queue)
    detached: bool = False
    task: asyncio.Task[None] | None = None


class FakeAgent:
    """One fake sandbox: the Host channel its link writes to and reads from."""

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id
        self._out: asyncio.Queue[bytes] = asyncio.Queue()
        self._buffer = bytearray()
        self._programs: dict[int, _Program] = {}
        self.files: dict[str, bytes] = {}
        self.paused = asyncio.Event()
        self.paused.set()  # set: running
        self.alive = True
        self.started = 0

    # Host
    def is_alive(self) -> bool:
        return self.alive

    def write(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= wire.HEADER.size:
            kind, ident, length = wire.HEADER.unpack_from(self._buffer)
            end = wire.HEADER.size + length
            if len(self._buffer) < end:
                return
            payload = bytes(self._buffer[wire.HEADER.size : end])
            del self._buffer[:end]
            asyncio.get_running_loop().create_task(self._handle(Request(kind), ident, payload))

    async def read(self) -> bytes:
        data = await self._out.get()
        return data

    def reset_peak_memory(self) -> None:
        pass

    async def set_memory(self, memory_bytes: int) -> None:
        pass

    async def ended(self, within: float) -> HostEnd:
        return HostEnd(exit_code=0 if self.alive else 137, oom_killed=False)

    def end(self) -> None:
        self.alive = False
        for program in self._programs.values():
            if program.task:
                program.task.cancel()
        self._out.put_nowait(b"")

    def _send(self, kind: Reply, ident: int, payload: bytes = b"") -> None:
        if self.alive:
            self._out.put_nowait(_frame(kind, ident, payload))

    async def _handle(self, kind: Request, ident: int, payload: bytes) -> None:
        await self.paused.wait()
        if not self.alive:
            return
        if kind is Request.HELLO:
            running = [(i, p) for i, p in self._programs.items() if p.task and not p.task.done()]
            self._send(Reply.SYNC, 0, payload + struct.pack(">I", len(running)))
            for i, p in running:
                self._send(Reply.RUNNING, i, struct.pack(">II", 7, 2 if p.detached else 0))
        elif kind is Request.START:
            self._start(ident, payload)
        elif kind is Request.STDIN:
            program = self._programs.get(ident)
            if program:
                program.stdin.put_nowait(payload)
            self._send(Reply.ACK, ident, struct.pack(">I", len(payload)))
        elif kind is Request.CLOSE_STDIN:
            program = self._programs.get(ident)
            if program:
                program.stdin.put_nowait(None)
        elif kind is Request.SIGNAL:
            program = self._programs.get(ident)
            if program:
                number = struct.unpack(">I", payload)[0]
                program.signals.put_nowait(number)
                if not program.signalled.done():
                    program.signalled.set_result(number)
        elif kind is Request.WRITE_FILE:
            (length,) = struct.unpack_from(">I", payload, 4)
            path = payload[8 : 8 + length].decode()
            self.files[path] = payload[8 + length :]
            self._send(Reply.DONE, ident)
        elif kind is Request.READ_FILES:
            self._read_files(ident, payload)
        elif kind is Request.LIST_DIR:
            self._list(ident)
        elif kind is Request.USAGE:
            disk = sum(len(v) for v in self.files.values())
            self._send(Reply.USAGE, ident, f"disk_bytes={disk}\nprocesses=1\n".encode())

    def _start(self, ident: int, payload: bytes) -> None:
        flags = struct.unpack_from(">I", payload)[0]
        offset = 4 + 8 + 8 + 8
        (cwd_len,) = struct.unpack_from(">I", payload, offset)
        offset += 4 + cwd_len
        (argc,) = struct.unpack_from(">I", payload, offset)
        offset += 4
        argv = []
        for _ in range(argc):
            (n,) = struct.unpack_from(">I", payload, offset)
            argv.append(payload[offset + 4 : offset + 4 + n].decode())
            offset += 4 + n
        program = _Program(detached=bool(flags & wire.FLAG_DETACHED))
        if flags & wire.FLAG_CLOSE_STDIN:
            program.stdin.put_nowait(None)
        self._programs[ident] = program
        self.started += 1
        program.task = asyncio.get_running_loop().create_task(self._run(ident, argv, program))

    async def _run(self, ident: int, argv: list[str], program: _Program) -> None:
        self._send(Reply.STARTED, ident, struct.pack(">I", 100 + ident % 1000))
        code, sig = 0, 0
        name, args = argv[0], argv[1:]
        if name == "echo":
            self._send(Reply.STDOUT, ident, (" ".join(args) + "\n").encode())
        elif name in ("cat", "upper"):
            while (chunk := await program.stdin.get()) is not None:
                self._send(Reply.STDOUT, ident, chunk.upper() if name == "upper" else chunk)
        elif name == "sleep":
            try:
                sig = await asyncio.wait_for(asyncio.shield(program.signalled), float(args[0]))
                code = 128 + sig
            except TimeoutError:
                pass
        elif name == "exit":
            code = int(args[0])
        elif name == "spam":
            self._send(Reply.STDOUT, ident, b"x" * int(args[0]))
        elif name in ("python3", "node"):  # a real interpreter on the host (the kernels)
            code, sig = await self._host_process(ident, argv, program)
        else:
            self._send(Reply.STDERR, ident, f"{name}: not found\n".encode())
            code = 127
        await self.paused.wait()
        self._send(Reply.EXIT, ident, REPORT.format(code=code, sig=sig, wall=0).encode())

    async def _host_process(
        self, ident: int, argv: list[str], program: _Program
    ) -> tuple[int, int]:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdin and process.stdout and process.stderr

        async def pump(reader: asyncio.StreamReader, kind: Reply) -> None:
            while chunk := await reader.read(65536):
                self._send(kind, ident, chunk)

        async def feed() -> None:
            assert process.stdin
            while (chunk := await program.stdin.get()) is not None:
                process.stdin.write(chunk)
                await process.stdin.drain()
            process.stdin.close()

        async def signals() -> None:
            while True:
                number = await program.signals.get()
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, number)

        helpers = [asyncio.ensure_future(feed()), asyncio.ensure_future(signals())]
        try:
            await asyncio.gather(
                pump(process.stdout, Reply.STDOUT), pump(process.stderr, Reply.STDERR)
            )
            returncode = await process.wait()
        finally:
            for helper in helpers:
                helper.cancel()
            if process.returncode is None:
                process.kill()
                await process.wait()
        return (128 - returncode, -returncode) if returncode < 0 else (returncode, 0)

    def _read_files(self, ident: int, payload: bytes) -> None:
        offset = 16
        (count,) = struct.unpack_from(">I", payload, offset)
        offset += 4
        for _ in range(count):
            (n,) = struct.unpack_from(">I", payload, offset)
            path = payload[offset + 4 : offset + 4 + n]
            offset += 4 + n
            content = self.files.get(path.decode())
            if content is None:
                self._send(Reply.FILE_HEADER, ident, b"m-" + struct.pack(">Q", 0) + path)
            else:
                header = b"rf" + struct.pack(">Q", len(content)) + path
                self._send(Reply.FILE_HEADER, ident, header)
                self._send(Reply.FILE_DATA, ident, content)
        self._send(Reply.DONE, ident)

    def _list(self, ident: int) -> None:
        body = b""
        for name in sorted(self.files):
            raw = name.encode()
            body += struct.pack(">BIQQI", ord("f"), 0o644, len(self.files[name]), 1700000000, 0)
            body += struct.pack(">H", len(raw)) + raw
        self._send(Reply.ENTRIES, ident, body)
        self._send(Reply.DONE, ident, b"\x00")


class FakeSessionBackend:
    def __init__(self) -> None:
        self.agents: dict[str, FakeAgent] = {}
        self.sessions: dict[str, str] = {}  # sandbox id -> session id
        self.created: dict[str, float] = {}
        self.resized: list[SessionLimits] = []
        self._ids = itertools.count(1)
        self._events: asyncio.Queue[SandboxEvent] = asyncio.Queue()
        self.down = False
        self.launches = 0

    def _check(self) -> None:
        if self.down:
            raise EngineUnavailable("the fake engine is down")

    async def launch_session(
        self, spec: LanguageSpec, limits: SessionLimits, session_id: str
    ) -> SessionSandbox:
        self._check()
        self.launches += 1
        sandbox_id = f"c{next(self._ids):063d}"
        agent = FakeAgent(sandbox_id)
        self.agents[sandbox_id] = agent
        self.sessions[sandbox_id] = session_id
        self.created[sandbox_id] = time.time()
        return SessionSandbox(session_id, sandbox_id, agent)

    async def attach(self, session_id: str, sandbox_id: str) -> SessionSandbox:
        self._check()
        agent = self.agents.get(sandbox_id)
        if agent is None or not agent.alive:
            raise EngineUnavailable(f"no container {sandbox_id}")
        return SessionSandbox(session_id, sandbox_id, agent)

    async def resize(self, sandbox: SessionSandbox, limits: SessionLimits) -> None:
        self.resized.append(limits)

    async def pause(self, sandbox_id: str) -> None:
        self._check()
        self.agents[sandbox_id].paused.clear()

    async def resume(self, sandbox_id: str) -> None:
        self._check()
        self.agents[sandbox_id].paused.set()

    async def remove(self, sandbox_id: str) -> None:
        self._check()
        self.vanish(sandbox_id, event=False)

    def vanish(self, sandbox_id: str, *, event: bool = True) -> None:
        """The container goes (removed by us, or behind the server's back)."""
        agent = self.agents.pop(sandbox_id, None)
        session_id = self.sessions.pop(sandbox_id, "")
        if agent is not None:
            agent.end()
        self._events.put_nowait(SandboxEvent(sandbox_id, session_id, "destroy"))

    def usage(self, sandbox_id: str) -> SandboxUsage:
        return SandboxUsage(1.5, 10 << 20, 12 << 20)

    async def listing(self) -> list[SandboxListing]:
        self._check()
        now = time.time()
        return [
            SandboxListing(
                i, self.sessions[i], a.alive, not a.paused.is_set(), now - self.created[i]
            )
            for i, a in self.agents.items()
        ]

    async def events(self) -> AsyncIterator[SandboxEvent]:
        while True:
            yield await self._events.get()
