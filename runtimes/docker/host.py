"""DockerHost: a started container as a `Host`, over its attach stream.

The supervisor's stdin, stdout and stderr travel on one raw, multiplexed
attach connection: writes go out as the supervisor reads, reads are split
back into the supervisor's stdout (its frames, handed to the conversation)
and stderr (its own diagnostics, logged).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from codebeaker.runtimes.backend import HostEnd
from codebeaker.runtimes.docker.cgroup import MemoryCgroup
from codebeaker.runtimes.docker.demux import STDOUT, AttachDemuxer
from codebeaker.runtimes.docker.engine import AttachStream, Engine

log = logging.getLogger(__name__)
READ_SIZE = 65536
# The engine may record a container's OOM kill a moment after its exit (seconds
# later on a loaded machine: containerd's OOM event travels on its own).
OOM_RECORD_POLLS = 40
OOM_RECORD_INTERVAL = 0.05


@dataclass
class DockerHost:
    container_id: str
    attach: AttachStream
    engine: Engine
    memory: MemoryCgroup | None = None  # a reusable host's, when the server can reach it
    _demux: AttachDemuxer = field(default_factory=AttachDemuxer)

    def is_alive(self) -> bool:
        return not self.attach.reader.at_eof()

    def write(self, data: bytes) -> None:
        self.attach.writer.write(data)

    async def read(self) -> bytes:
        while True:
            data = await self.attach.reader.read(READ_SIZE)
            if not data:
                return b""
            frames = bytearray()
            for stream, piece in self._demux.feed(data):
                if stream == STDOUT:
                    frames += piece
                else:  # its own diagnostics (a host retiring itself says why here)
                    text = piece.decode(errors="replace").rstrip()
                    log.warning("sandbox %s: %s", self.container_id[:12], text)
            if frames:
                return bytes(frames)

    def reset_peak_memory(self) -> None:
        if self.memory is not None:
            self.memory.reset_peak()

    async def set_memory(self, memory_bytes: int) -> None:
        await self.engine.set_memory(self.container_id, memory_bytes)

    async def ended(self, within: float) -> HostEnd:
        state = await self.engine.wait_exit(self.container_id, within)
        for _ in range(OOM_RECORD_POLLS):
            if state.oom_killed:
                break
            await asyncio.sleep(OOM_RECORD_INTERVAL)
            state = await self.engine.state(self.container_id)
        return HostEnd(exit_code=state.exit_code, oom_killed=state.oom_killed)
