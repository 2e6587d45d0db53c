"""Code cells in the runtime layer: which languages have a kernel, how one is started,
and reading a kernel's stdout (kernels/PROTOCOL.md).

A kernel's stdout carries messages (`\\n\\x1e TOKEN \\x1f JSON \\n`) among the
running cell's raw output. `KernelStream` splits the two for the token of the
cell that runs: a message with any other token is raw output like the rest, so
a cell cannot speak for another cell.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from dataclasses import dataclass
from functools import cache
from importlib import resources

from codebeaker.runtimes.sessions.agent import ExecCommand

KERNEL_FILES = {"python": "kernel.py", "javascript": "kernel.js"}
_LAUNCHERS = {"python": ("python3", "-u", "-c"), "javascript": ("node", "-e")}
_EXTRA_ENV = {"python": {"MPLBACKEND": "Agg"}, "javascript": {}}
START = b"\n\x1e"
SEPARATOR = b"\x1f"


def has_kernel(language: str) -> bool:
    return language in KERNEL_FILES


def new_token() -> str:
    return secrets.token_hex(16)


@cache
def kernel_source(language: str) -> str:
    path = resources.files("codebeaker.runtimes.sessions").joinpath(
        "kernels", KERNEL_FILES[language]
    )
    return path.read_text()


def kernel_command(language: str, env: dict[str, str], token: str) -> ExecCommand:
    """The Exec that starts `language`'s kernel (no limits of its own: each cell has them)."""
    argv = (*_LAUNCHERS[language], kernel_source(language), token)
    return ExecCommand(
        argv=argv,
        env={**env, **_EXTRA_ENV[language]},
        cwd="",
        wall_time=0.0,
        cpu_time=0.0,
        output_cap=0,
    )


def request_line(token: str, code: str) -> bytes:
    return json.dumps({"cell": token, "code": code}).encode() + b"\n"


@dataclass(frozen=True)
class Raw:
    """Bytes of the kernel's stdout that are no message: the running cell's stdout."""

    data: bytes


@dataclass(frozen=True)
class Message:
    kind: str  # ready, out, err, display, done
    fields: dict[str, object]

    def data(self) -> bytes:
        raw = self.fields.get("data", "")
        try:
            return base64.b64decode(str(raw), validate=True)
        except (binascii.Error, ValueError):
            return b""

    def text(self, key: str) -> str:
        value = self.fields.get(key, "")
        return value if isinstance(value, str) else str(value)


KernelEvent = Raw | Message


class KernelStream:
    def __init__(self, token: str) -> None:
        self._buffer = bytearray()
        self.token = token

    def feed(self, data: bytes) -> list[KernelEvent]:
        self._buffer += data
        events: list[KernelEvent] = []
        marker = START + self.token.encode() + SEPARATOR
        while True:
            at = self._buffer.find(marker)
            if at < 0:
                keep = _partial_suffix(self._buffer, marker)
                if len(self._buffer) > keep:
                    events.append(Raw(bytes(self._buffer[: len(self._buffer) - keep])))
                    del self._buffer[: len(self._buffer) - keep]
                return events
            end = self._buffer.find(b"\n", at + len(marker))
            if end < 0:  # the message is not whole yet: what precedes it is output
                if at:
                    events.append(Raw(bytes(self._buffer[:at])))
                    del self._buffer[:at]
                return events
            if at:
                events.append(Raw(bytes(self._buffer[:at])))
            line = bytes(self._buffer[at + len(marker) : end])
            del self._buffer[: end + 1]
            message = _message(line)
            events.append(message if message is not None else Raw(marker + line + b"\n"))


def _partial_suffix(buffer: bytearray, marker: bytes) -> int:
    """How many trailing bytes of `buffer` could start `marker` (kept for the next feed)."""
    for size in range(min(len(marker) - 1, len(buffer)), 0, -1):
        if buffer.endswith(marker[:size]):
            return size
    return 0


def _message(line: bytes) -> Message | None:
    try:
        fields = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(fields, dict) or not isinstance(fields.get("k"), str):
        return None
    return Message(fields["k"], fields)
