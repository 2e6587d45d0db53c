"""Docker's multiplexed attach stream: 8-byte headers, then stdout or stderr bytes.

Without a TTY the engine prefixes every piece of container output with
[stream, 0, 0, 0, size (u32 big-endian)]. This splits the byte stream back
into (stream, bytes) pieces, whatever the read boundaries were.
"""

from __future__ import annotations

import struct

STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxI")


class AttachDemuxer:
    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        pieces: list[tuple[int, bytes]] = []
        while len(self._buffer) >= _HEADER.size:
            stream, size = _HEADER.unpack_from(self._buffer)
            end = _HEADER.size + size
            if len(self._buffer) < end:
                break
            pieces.append((stream, bytes(self._buffer[_HEADER.size : end])))
            del self._buffer[:end]
        return pieces
