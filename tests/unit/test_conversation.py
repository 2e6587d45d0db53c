"""The supervisor conversation over a scripted host: the loop every backend shares.

The host here is a fake byte stream (what a backend would feed from its
transport); the frames are what cb-supervisor sends. Integration tests run the
same loop against the real supervisor in Docker.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field, replace

import pytest

from codebeaker.runtimes.backend import HostEnd
from codebeaker.runtimes.errors import HostLost, SandboxFailure
from codebeaker.runtimes.model import Event, Finished, Job, LimitKind, Output, Started, Verdict
from codebeaker.runtimes.supervisor.conversation import FrameReader, await_ready, converse
from codebeaker.runtimes.supervisor.protocol import FrameType, encode_request, plan_stages
from tests.unit.jobs import LIMITS, job_for

UNREPORTED = HostEnd(exit_code=137, oom_killed=False)
GO_AHEAD = object()  # in a script: wait until the server has sent the go-on
FOREVER = object()  # in a script: the supervisor says nothing more


def frame(kind: FrameType, payload: bytes = b"") -> bytes:
    return struct.pack(">BI", kind.value, len(payload)) + payload


def report(exit_code: int = 0) -> bytes:
    values = dict.fromkeys(
        ("signal", "oom_kills", "wall_limit", "cpu_limit", "stdout_truncated", "stderr_truncated"),
        0,
    )
    values |= {"exit_code": exit_code, "wall_us": 2000, "cpu_us": 1000, "peak_memory": 4096}
    values["oom_counted"] = 1
    return frame(FrameType.EXIT, "".join(f"{k}={v}\n" for k, v in values.items()).encode())


@dataclass
class ScriptedHost:
    """Reads come from `script`; what the conversation does is logged in order."""

    script: list[object]
    end: HostEnd = UNREPORTED
    log: list[str] = field(default_factory=list)
    written: bytearray = field(default_factory=bytearray)
    _go: asyncio.Event = field(default_factory=asyncio.Event)

    def is_alive(self) -> bool:
        return True

    def write(self, data: bytes) -> None:
        self.log.append(f"write {data[:1]!r}")
        self.written += data
        if data.startswith(b"G"):
            self._go.set()

    async def read(self) -> bytes:
        if not self.script:
            return b""
        item = self.script.pop(0)
        if item is GO_AHEAD:
            await self._go.wait()
            return await self.read()
        if item is FOREVER:
            await asyncio.Event().wait()
        assert isinstance(item, bytes)
        return item

    def reset_peak_memory(self) -> None:
        self.log.append("reset peak")

    async def set_memory(self, memory_bytes: int) -> None:
        self.log.append(f"memory {memory_bytes}")

    async def ended(self, within: float) -> HostEnd:
        self.log.append("ended")
        return self.end


async def events_of(host: ScriptedHost, job: Job, wall_grace: float = 1.0) -> list[Event]:
    plans = plan_stages(job, {})
    _, after_pause = encode_request(job.files, plans)
    frames = FrameReader(host)
    conversation: AsyncGenerator[Event, None] = converse(
        frames, job, plans, after_pause, wall_grace
    )
    return [event async for event in conversation]


async def test_frames_split_anywhere_become_events_in_order() -> None:
    stream = frame(FrameType.STARTED) + frame(FrameType.STDOUT, b"hello\n") + report()
    stream += frame(FrameType.END)
    pieces: list[object] = [stream[i : i + 3] for i in range(0, len(stream), 3)]
    events = await events_of(ScriptedHost(pieces), job_for("python"))
    assert isinstance(events[0], Started)
    assert [e.data for e in events if isinstance(e, Output)] == [b"hello\n"]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.outcome.verdict is Verdict.OK
    assert finished.outcome.wall_time == pytest.approx(0.002)


async def test_a_supervisor_that_misses_the_wall_limit_is_cut_short_by_the_servers_clock() -> None:
    job = replace(job_for("python"), limits=replace(LIMITS, wall_time=0.05))
    host = ScriptedHost([frame(FrameType.STARTED), FOREVER])
    events = await events_of(host, job, wall_grace=0.05)
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.outcome.verdict is Verdict.TIME_LIMIT_EXCEEDED
    assert finished.outcome.limit_exceeded is LimitKind.WALL_TIME
    assert finished.outcome.wall_time >= 0.05


async def test_a_host_that_ends_unreported_after_an_oom_kill_is_a_memory_verdict() -> None:
    host = ScriptedHost([frame(FrameType.STARTED)], end=HostEnd(137, oom_killed=True))
    events = await events_of(host, job_for("python"))
    finished = events[-1]
    assert isinstance(finished, Finished)
    assert finished.outcome.verdict is Verdict.MEMORY_LIMIT_EXCEEDED
    assert host.log[-1] == "ended"


async def test_a_host_that_ends_unreported_otherwise_is_lost_and_worth_a_retry() -> None:
    host = ScriptedHost([frame(FrameType.STARTED)], end=HostEnd(1, oom_killed=False))
    with pytest.raises(HostLost, match="without reporting an exit"):
        await events_of(host, job_for("python"))


async def test_a_reused_host_keeps_the_frames_that_came_after_a_requests_end() -> None:
    first = frame(FrameType.STARTED) + report() + frame(FrameType.END) + frame(FrameType.READY)
    host = ScriptedHost([frame(FrameType.READY), first])
    frames = FrameReader(host)
    await await_ready(frames, 1.0)
    job = job_for("python")
    plans = plan_stages(job, {})
    events = [e async for e in converse(frames, job, plans, b"", 1.0)]
    assert isinstance(events[-1], Finished) and frames.request_done
    await await_ready(frames, 1.0)  # the READY that arrived with the END
    assert not frames.request_done


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ([frame(FrameType.FATAL, b"cannot create the run's namespaces")], "namespaces"),
        ([frame(FrameType.STDOUT, b"x")], "sent STDOUT where READY was due"),
        ([], "ended before it was ready"),
        ([FOREVER], "did not get ready"),
    ],
)
async def test_a_host_that_does_not_say_ready_is_a_failure_saying_what_came(
    script: list[object], message: str
) -> None:
    with pytest.raises(SandboxFailure, match=message):
        await await_ready(FrameReader(ScriptedHost(script)), 0.05)


async def test_a_fatal_frame_is_our_failure_with_the_supervisors_reason() -> None:
    host = ScriptedHost([frame(FrameType.FATAL, b"bad request")])
    with pytest.raises(SandboxFailure, match="bad request"):
        await events_of(host, job_for("python"))


async def test_a_compile_with_its_own_memory_gets_the_runs_limit_before_the_go_on() -> None:
    job = replace(
        job_for("c"), compile_limits=replace(LIMITS, memory_bytes=LIMITS.memory_bytes * 2)
    )
    compile_then_run = [
        frame(FrameType.STARTED) + report(),
        GO_AHEAD,
        frame(FrameType.STARTED) + frame(FrameType.STDOUT, b"ran\n") + report(),
        frame(FrameType.END),
    ]
    host = ScriptedHost(compile_then_run)
    events = await events_of(host, job)
    assert host.log == [f"memory {LIMITS.memory_bytes}", "write b'G'"]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.outcome.verdict is Verdict.OK
    assert finished.compile is not None and finished.compile.outcome.verdict is Verdict.OK
