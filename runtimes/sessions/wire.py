"""The server's half of the session agent's wire protocol (PROTOCOL.md § Session mode).

Pure byte handling: encoding the server's frames, and decoding the agent's
stream into tagged frames, including finding the point where a freshly
attached stream becomes trustworthy (the agent's `Y` answer to our nonce).
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from codebeaker.runtimes.errors import SandboxFailure

HEADER = struct.Struct(">BII")
MAX_AGENT_PAYLOAD = 65536
MAX_STDIN_FRAME = 65536
STDIN_WINDOW = 256 * 1024  # unacknowledged stdin bytes per Exec the agent accepts
NONCE_BYTES = 16
FLAG_CLOSE_STDIN = 1
FLAG_DETACHED = 2
_ENTRY = struct.Struct(">BIQQI")
_U16 = struct.Struct(">H")


class Request(enum.Enum):
    START = ord("s")
    STDIN = ord("i")
    CLOSE_STDIN = ord("c")
    SIGNAL = ord("k")
    WRITE_FILE = ord("w")
    READ_FILES = ord("r")
    LIST_DIR = ord("l")
    USAGE = ord("u")
    HELLO = ord("h")


class Reply(enum.Enum):
    STARTED = ord("S")
    STDOUT = ord("1")
    STDERR = ord("2")
    EXIT = ord("X")
    ACK = ord("A")
    FAILED = ord("F")
    FILE_HEADER = ord("H")
    FILE_DATA = ord("D")
    ENTRIES = ord("N")
    DONE = ord("K")
    USAGE = ord("U")
    SYNC = ord("Y")
    RUNNING = ord("L")


@dataclass(frozen=True)
class AgentFrame:
    type: Reply
    id: int
    payload: bytes


@dataclass(frozen=True)
class DirEntry:
    name: str
    kind: str  # f d l p c b s ?
    mode: int
    size: int
    mtime: float  # seconds since the epoch


def frame(kind: Request, ident: int, payload: bytes = b"") -> bytes:
    return HEADER.pack(kind.value, ident, len(payload)) + payload


def _u32(value: int) -> bytes:
    return struct.pack(">I", value)


def _u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def _blob(data: bytes) -> bytes:
    return _u32(len(data)) + data


def _strings(values: Iterable[bytes]) -> bytes:
    items = list(values)
    return _u32(len(items)) + b"".join(_blob(v) for v in items)


def _ms(seconds: float) -> bytes:
    return _u64(math.ceil(seconds * 1000) if seconds > 0 else 0)


def start(
    ident: int,
    argv: Iterable[str],
    env: Mapping[str, str],
    cwd: str,
    *,
    wall_time: float,
    cpu_time: float,
    output_cap: int,
    close_stdin: bool = False,
    detached: bool = False,
) -> bytes:
    flags = (FLAG_CLOSE_STDIN if close_stdin else 0) | (FLAG_DETACHED if detached else 0)
    payload = b"".join(
        [
            _u32(flags),
            _ms(wall_time),
            _ms(cpu_time),
            _u64(output_cap),
            _blob(cwd.encode()),
            _strings(a.encode() for a in argv),
            _strings(f"{k}={v}".encode() for k, v in env.items()),
        ]
    )
    return frame(Request.START, ident, payload)


def write_file(ident: int, path: str, content: bytes, mode: int) -> bytes:
    return frame(Request.WRITE_FILE, ident, _u32(mode) + _blob(path.encode()) + content)


def read_files(ident: int, patterns: Iterable[str], file_cap: int, total_cap: int) -> bytes:
    body = _u64(file_cap) + _u64(total_cap) + _strings(p.encode() for p in patterns)
    return frame(Request.READ_FILES, ident, body)


def parse_entries(payload: bytes) -> list[DirEntry]:
    entries: list[DirEntry] = []
    offset = 0
    while offset < len(payload):
        if offset + _ENTRY.size + _U16.size > len(payload):
            raise SandboxFailure("the session agent sent a short directory entry")
        kind, mode, size, seconds, nanos = _ENTRY.unpack_from(payload, offset)
        offset += _ENTRY.size
        (length,) = _U16.unpack_from(payload, offset)
        offset += _U16.size
        name = payload[offset : offset + length].decode(errors="surrogateescape")
        offset += length
        entries.append(DirEntry(name, chr(kind), mode, size, seconds + nanos / 1e9))
    return entries


def parse_pairs(payload: bytes) -> dict[str, int]:
    """An ASCII key=value report (U frames)."""
    values: dict[str, int] = {}
    for line in payload.decode("ascii", errors="replace").splitlines():
        key, _, raw = line.partition("=")
        try:
            values[key] = int(raw)
        except ValueError:
            continue
    return values


class AgentDecoder:
    """The agent's stream, in arbitrary pieces, as frames; everything before the
    `Y` frame answering `nonce` is skipped (a stream attached mid-way may start
    in the middle of a frame, and only the agent knows our nonce)."""

    def __init__(self, nonce: bytes) -> None:
        self._buffer = bytearray()
        self._marker = HEADER.pack(Reply.SYNC.value, 0, NONCE_BYTES + 4) + nonce
        self.synced = False

    def feed(self, data: bytes) -> list[AgentFrame]:
        self._buffer += data
        if not self.synced and not self._find_sync():
            return []
        frames: list[AgentFrame] = []
        while len(self._buffer) >= HEADER.size:
            kind, ident, length = HEADER.unpack_from(self._buffer)
            if length > MAX_AGENT_PAYLOAD:
                raise SandboxFailure(f"the session agent sent an oversized frame ({length})")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            try:
                reply = Reply(kind)
            except ValueError:
                raise SandboxFailure(f"the session agent sent an unknown frame {kind}") from None
            frames.append(AgentFrame(reply, ident, bytes(self._buffer[HEADER.size : end])))
            del self._buffer[:end]
        return frames

    def _find_sync(self) -> bool:
        at = self._buffer.find(self._marker)
        if at < 0:  # keep what could be the start of the marker
            del self._buffer[: max(0, len(self._buffer) - len(self._marker))]
            return False
        del self._buffer[:at]
        self.synced = True
        return True
