"""A scripted stand-in for the sandbox, for unit tests of the server.

The job's source is a tiny script, one command per line:
  out TEXT / err TEXT   emit TEXT (+ newline) on stdout / stderr
  hex HEX               emit raw bytes on stdout
  big N                 emit N bytes of "x" on stdout in one piece
  block                 wait until the test calls `release()` (`blocked_at_least(n)`: n did)
  raise unavailable     raise EngineUnavailable
  raise crash           raise a plain RuntimeError (an unexpected bug)
  exit N                finish with exit code N (default 0)

Readiness: `unready` makes every language unready with that reason (an engine
that does not answer), `unready_languages` only the languages it names; the
others are ready. `readiness_checks(n)` waits until the server has asked n times.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.errors import EngineUnavailable
from codebeaker.runtimes.model import (
    Event,
    Finished,
    Job,
    Outcome,
    Output,
    Started,
    Stream,
    Verdict,
)
from codebeaker.runtimes.pool import PoolStats


class FakeSandbox:
    def __init__(
        self, unready: str | None = None, unready_languages: Mapping[str, str] | None = None
    ) -> None:
        self.unready = unready
        self.unready_languages = dict(unready_languages or {})
        self._checks = 0
        self._checked = asyncio.Condition()
        self.jobs: list[Job] = []
        self.torn_down: list[str] = []
        self.running = 0
        self.idle = asyncio.Event()  # set whenever the last running job is torn down
        self.blocked = asyncio.Event()
        self._blocking = 0
        self._blocked_count = asyncio.Condition()
        self._release = asyncio.Event()
        self.prepared = False
        self.closed = False

    def release(self) -> None:
        self._release.set()

    async def execute(self, job: Job) -> AsyncGenerator[Event, None]:
        self.jobs.append(job)
        self.running += 1
        self.idle.clear()
        try:
            yield Started()
            code = 0
            for line in job.files[0].content.decode().splitlines():
                command, _, arg = line.partition(" ")
                if command == "out":
                    yield Output(Stream.STDOUT, arg.encode() + b"\n")
                elif command == "err":
                    yield Output(Stream.STDERR, arg.encode() + b"\n")
                elif command == "hex":
                    yield Output(Stream.STDOUT, bytes.fromhex(arg))
                elif command == "big":
                    yield Output(Stream.STDOUT, b"x" * int(arg))
                elif command == "block":
                    self.blocked.set()
                    async with self._blocked_count:
                        self._blocking += 1
                        self._blocked_count.notify_all()
                    await self._release.wait()
                elif command == "raise":
                    if arg == "unavailable":
                        raise EngineUnavailable("Docker engine unreachable (fake)")
                    raise RuntimeError("a bug with a secret inside")
                elif command == "exit":
                    code = int(arg)
            yield Finished(
                Outcome(
                    verdict=Verdict.OK if code == 0 else Verdict.RUNTIME_ERROR,
                    exit_code=code,
                    signal=0,
                    wall_time=0.01,
                    cpu_time=0.005,
                    peak_memory_bytes=1 << 20,
                    stdout_truncated=False,
                    stderr_truncated=False,
                    message="" if code == 0 else f"exited with code {code}",
                )
            )
        finally:
            self.running -= 1
            self.torn_down.append(job.execution_id)
            if self.running == 0:
                self.idle.set()

    async def blocked_at_least(self, count: int) -> None:
        """Return once `count` jobs have reached `block` (since the start)."""
        async with self._blocked_count:
            await self._blocked_count.wait_for(lambda: self._blocking >= count)

    def memory_resizable(self, language: str) -> bool:
        return True

    async def prepare(self) -> None:
        self.prepared = True

    async def readiness(self) -> Mapping[str, str | None]:
        answer = {
            spec.key: self.unready or self.unready_languages.get(spec.key)
            for spec in Catalog.load().runtimes()
        }
        async with self._checked:
            self._checks += 1
            self._checked.notify_all()
        return answer

    async def readiness_checks(self, count: int) -> None:
        """Return once readiness has been asked `count` times (since the start)."""
        async with self._checked:
            await self._checked.wait_for(lambda: self._checks >= count)

    async def versions(self) -> Mapping[str, str]:
        return {"python": "3.11.2", "javascript": "18.19.0"}

    async def packages(self) -> Mapping[str, Mapping[str, str]]:
        return {"python": {"numpy": "1.24.2", "pandas": "1.5.3"}, "javascript": {}}

    def pool_stats(self) -> Mapping[str, PoolStats]:
        return {"python": PoolStats(2, 1, 1, 0, 5, 2, 1)}

    async def close(self) -> None:
        self.closed = True
