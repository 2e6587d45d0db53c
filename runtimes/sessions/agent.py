"""The link to one session's agent: Execs and file requests multiplexed on one stream.

A backend hands over the session sandbox's byte channel (a `Host`: write, and
read of the agent's stdout). `AgentLink.open` says hello with a fresh nonce and
skips everything the agent sent before its answer (a restarted server attaches
mid-stream), then learns which Execs are still running. One reader task routes
the agent's frames by id: each Exec and each file request has a queue of its
own; stdin acknowledgements open the Exec's stdin window directly. When the
stream ends, every waiter is woken with the link's end (`lost`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from codebeaker.runtimes.backend import Host
from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.model import OutputFile, OutputFiles
from codebeaker.runtimes.sessions import wire
from codebeaker.runtimes.sessions.wire import AgentFrame, DirEntry, Reply, Request
from codebeaker.runtimes.supervisor.protocol import ExitReport, parse_exit_report, parse_file_header

log = logging.getLogger(__name__)
HELLO_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0
_PID = struct.Struct(">I")
_RUNNING = struct.Struct(">II")


@dataclass(frozen=True)
class RunningExec:
    """An Exec the agent was running when we attached."""

    id: int
    pid: int
    detached: bool


@dataclass(frozen=True)
class ExecOutput:
    stream: Reply  # STDOUT or STDERR
    data: bytes


@dataclass(frozen=True)
class ExecStartedFrame:
    pid: int


@dataclass(frozen=True)
class ExecEnded:
    report: ExitReport


@dataclass(frozen=True)
class ExecFailed:
    """The Exec never started, or ended without a report (the message says why)."""

    message: str


ExecFrame = ExecStartedFrame | ExecOutput | ExecEnded | ExecFailed


@dataclass(frozen=True)
class ExecCommand:
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    wall_time: float  # seconds, 0: none
    cpu_time: float
    output_cap: int
    detached: bool = False
    close_stdin: bool = False


@dataclass
class _Window:
    """An Exec's unacknowledged stdin bytes (the agent takes at most STDIN_WINDOW)."""

    unacked: int = 0
    opened: asyncio.Event = field(default_factory=asyncio.Event)


class AgentExec:
    """One Exec over the link: its frames as values, and its stdin and signals."""

    def __init__(self, link: AgentLink, ident: int) -> None:
        self.id = ident
        self._link = link
        self._window = _Window()
        self._frames: asyncio.Queue[AgentFrame | None] = asyncio.Queue()
        self.ended = False

    def _deliver(self, frame: AgentFrame | None) -> None:
        if frame is not None and frame.type is Reply.ACK:
            if len(frame.payload) >= 4:
                (count,) = _PID.unpack_from(frame.payload)
                self._window.unacked = max(0, self._window.unacked - count)
                self._window.opened.set()
            return
        if frame is None:
            self._window.opened.set()
        self._frames.put_nowait(frame)

    async def next(self) -> ExecFrame:
        """The Exec's next event; ExecFailed when the link ended first."""
        while True:
            frame = await self._frames.get()
            if frame is None:
                self.ended = True
                return ExecFailed(self._link.lost or "the session's sandbox went away")
            event = _exec_event(frame)
            if event is not None:
                if isinstance(event, ExecEnded | ExecFailed):
                    self.ended = True
                    self._link.forget(self.id)
                return event

    async def write_stdin(self, data: bytes) -> None:
        """Send stdin, waiting while the agent holds a full window of it."""
        for offset in range(0, len(data), wire.MAX_STDIN_FRAME):
            chunk = data[offset : offset + wire.MAX_STDIN_FRAME]
            while self._window.unacked + len(chunk) > wire.STDIN_WINDOW:
                if self.ended or self._link.lost:
                    return
                self._window.opened.clear()
                await self._window.opened.wait()
            if self.ended or self._link.lost:
                return
            self._window.unacked += len(chunk)
            self._link.send(wire.frame(Request.STDIN, self.id, chunk))

    def close_stdin(self) -> None:
        if not self.ended:
            self._link.send(wire.frame(Request.CLOSE_STDIN, self.id))

    def signal(self, number: int) -> None:
        if not self.ended:
            self._link.send(wire.frame(Request.SIGNAL, self.id, _PID.pack(number)))


def _exec_event(frame: AgentFrame) -> ExecFrame | None:
    if frame.type is Reply.STARTED:
        pid = _PID.unpack_from(frame.payload)[0] if len(frame.payload) >= 4 else 0
        return ExecStartedFrame(pid)
    if frame.type in (Reply.STDOUT, Reply.STDERR):
        return ExecOutput(frame.type, frame.payload)
    if frame.type is Reply.EXIT:
        return ExecEnded(parse_exit_report(frame.payload))
    if frame.type is Reply.FAILED:
        return ExecFailed(frame.payload.decode(errors="replace"))
    return None  # nothing else belongs to an Exec


class AgentLink:
    """Everything the server says to one session's agent, and routes back."""

    def __init__(self, host: Host, *, on_end: Callable[[str], None] | None = None) -> None:
        self.host = host
        self._nonce = os.urandom(wire.NONCE_BYTES)
        self._decoder = wire.AgentDecoder(self._nonce)
        self._routes: dict[int, Callable[[AgentFrame | None], None]] = {}
        self._next_id = (int.from_bytes(os.urandom(3), "big") << 4) | 1
        self._reader: asyncio.Task[None] | None = None
        self._synced: asyncio.Future[int] | None = None
        self._running: list[RunningExec] = []
        self.on_end = on_end
        self._expected = 0
        self._closing = False
        self.lost = ""  # why the link ended, once it has

    async def open(self, within: float = HELLO_TIMEOUT) -> list[RunningExec]:
        """Say hello; the Execs the agent is running (none for a new session)."""
        loop = asyncio.get_running_loop()
        self._synced = loop.create_future()
        self._reader = loop.create_task(self._read())
        self.send(wire.frame(Request.HELLO, 0, self._nonce))
        try:
            async with asyncio.timeout(within):
                await self._synced
        except TimeoutError:
            raise SandboxFailure(f"the session agent did not answer within {within:.0f}s") from None
        running = list(self._running)
        for item in running:
            self._next_id = max(self._next_id, item.id + 1)
        return running

    def send(self, data: bytes) -> None:
        if not self.lost:
            self.host.write(data)

    def _new_id(self) -> int:
        while True:
            ident = self._next_id
            self._next_id = self._next_id + 1 if self._next_id < 0xFFFFFFF0 else 1
            if ident not in self._routes:
                return ident

    def forget(self, ident: int) -> None:
        self._routes.pop(ident, None)

    # ---------- Execs ----------

    def start(self, command: ExecCommand) -> AgentExec:
        ident = self._new_id()
        execution = AgentExec(self, ident)
        self._routes[ident] = execution._deliver
        self.send(
            wire.start(
                ident,
                command.argv,
                command.env,
                command.cwd,
                wall_time=command.wall_time,
                cpu_time=command.cpu_time,
                output_cap=command.output_cap,
                close_stdin=command.close_stdin,
                detached=command.detached,
            )
        )
        return execution

    def adopt(self, running: RunningExec) -> AgentExec:
        """Follow an Exec the agent was running before we attached."""
        execution = AgentExec(self, running.id)
        self._routes[running.id] = execution._deliver
        return execution

    # ---------- files and usage ----------

    async def _request(
        self, kind: Request, payload_frame: Callable[[int], bytes]
    ) -> list[AgentFrame]:
        ident = self._new_id()
        frames: asyncio.Queue[AgentFrame | None] = asyncio.Queue()
        self._routes[ident] = frames.put_nowait
        collected: list[AgentFrame] = []
        try:
            self.send(payload_frame(ident))
            async with asyncio.timeout(REQUEST_TIMEOUT):
                while True:
                    frame = await frames.get()
                    if frame is None:
                        raise SandboxFailure(self.lost or "the session's sandbox went away")
                    if frame.type is Reply.FAILED:
                        raise AgentRefused(frame.payload.decode(errors="replace"))
                    collected.append(frame)
                    if frame.type in (Reply.DONE, Reply.USAGE):
                        return collected
        except TimeoutError:
            raise SandboxFailure(
                f"the session agent did not answer a {kind.name} request"
            ) from None
        finally:
            self.forget(ident)

    async def write_file(self, path: str, content: bytes, mode: int) -> None:
        await self._request(Request.WRITE_FILE, lambda i: wire.write_file(i, path, content, mode))

    async def read_files(self, patterns: Iterable[str], caps: OutputFiles) -> list[OutputFile]:
        wanted = list(patterns)
        frames = await self._request(
            Request.READ_FILES,
            lambda i: wire.read_files(i, wanted, caps.file_cap, caps.total_cap),
        )
        files: list[OutputFile] = []
        content = bytearray()
        header: OutputFile | None = None
        for frame in frames:
            if frame.type in (Reply.FILE_HEADER, Reply.DONE) and header is not None:
                files.append(_with_content(header, bytes(content)))
                header, content = None, bytearray()
            if frame.type is Reply.FILE_HEADER:
                header = parse_file_header(frame.payload, caps)
            elif frame.type is Reply.FILE_DATA:
                content += frame.payload
        return files

    async def list_dir(self, path: str) -> tuple[list[DirEntry], bool]:
        frames = await self._request(
            Request.LIST_DIR, lambda i: wire.frame(Request.LIST_DIR, i, path.encode())
        )
        entries: list[DirEntry] = []
        truncated = False
        for frame in frames:
            if frame.type is Reply.ENTRIES:
                entries.extend(wire.parse_entries(frame.payload))
            elif frame.type is Reply.DONE:
                truncated = frame.payload[:1] == b"\x01"
        return entries, truncated

    async def usage(self) -> dict[str, int]:
        frames = await self._request(Request.USAGE, lambda i: wire.frame(Request.USAGE, i))
        return wire.parse_pairs(frames[-1].payload)

    # ---------- the reader ----------

    async def _read(self) -> None:
        reason = "the session's sandbox closed its stream"
        try:
            while True:
                data = await self.host.read()
                if not data:
                    break
                for frame in self._decoder.feed(data):
                    self._route(frame)
        except SandboxFailure as error:
            reason = str(error)
        except (OSError, asyncio.IncompleteReadError) as error:
            reason = f"the session's stream broke: {error}"
        finally:
            self._end(reason)

    def _route(self, frame: AgentFrame) -> None:
        if frame.type is Reply.SYNC:
            self._sync(frame.payload)
        elif frame.type is Reply.RUNNING and self._synced is not None and not self._synced.done():
            self._running_exec(frame)
        else:
            route = self._routes.get(frame.id)
            if route is not None:
                route(frame)
            # else: a frame of an Exec nobody follows (stale, or from before we attached)

    def _sync(self, payload: bytes) -> None:
        if (
            self._synced is None
            or self._synced.done()
            or payload[: wire.NONCE_BYTES] != self._nonce
        ):
            return
        (count,) = _PID.unpack_from(payload, wire.NONCE_BYTES)
        self._expected = count
        if count == 0:
            self._synced.set_result(0)

    def _running_exec(self, frame: AgentFrame) -> None:
        pid, flags = _RUNNING.unpack_from(frame.payload) if len(frame.payload) >= 8 else (0, 0)
        self._running.append(RunningExec(frame.id, pid, bool(flags & wire.FLAG_DETACHED)))
        if self._synced is not None and len(self._running) >= self._expected:
            self._synced.set_result(len(self._running))

    def _end(self, reason: str) -> None:
        if self.lost:
            return
        self.lost = reason
        if self._synced is not None and not self._synced.done():
            self._synced.set_exception(SandboxFailure(reason))
        for route in list(self._routes.values()):
            route(None)
        self._routes.clear()
        if self.on_end is not None and not self._closing:
            self.on_end(reason)

    async def close(self) -> None:
        """Stop reading (the sandbox and its Execs keep running)."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


class AgentRefused(SandboxFailure):
    """The agent refused one request (its F frame): a bad path, a full disk, ..."""


def _with_content(header: OutputFile, content: bytes) -> OutputFile:
    return OutputFile(header.path, header.status, content, header.size, header.reason)
