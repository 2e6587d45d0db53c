"""What `python -m bench.operations` stands up: a Redis of its own, servers with a queue, and
the count of state changes read back from a server's log.

The Redis is Debian's `redis-server` on a free loopback port, its files in a
temporary directory, no snapshots and no append-only file (the bench measures
the queue, not Redis's disk). Each server gets its own `--instance` and state
directory; with Redis, each phase its own database number, so no phase sees
another's operations.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

START_TIMEOUT = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisProcess:
    """One redis-server on 127.0.0.1, stopped (files removed) on exit."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (bash scripts/ensure-test-tools.sh)")
        self._binary = binary
        self._dir = tempfile.TemporaryDirectory(prefix="cb-bench-redis-")
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def __enter__(self) -> RedisProcess:
        for _ in range(3):  # another process may take the probed port before redis binds it
            self.port = _free_port()
            argv = [
                self._binary, "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self._dir.name, "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--logfile", str(Path(self._dir.name) / "redis.log"),
            ]  # fmt: skip
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._process.poll() is None:
                if _answers(self.port):
                    return self
                time.sleep(0.05)
            self._stop()
        raise RuntimeError("redis-server did not start on a loopback port")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()
        self._dir.cleanup()

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def server_flags(
    state_dir: Path, *, queue: str, workers: int, concurrency: int, pool_size: int
) -> list[str]:
    """A server whose queue may use every execution slot (as `Execute`'s callers may), python
    pooled only, no queue limit."""
    return [
        "--state-dir", str(state_dir),
        "--queue", queue,
        "--queue-workers", str(workers),
        "--queue-share", str(concurrency),
        "--max-concurrency", str(concurrency),
        "--max-queued", "0",
        "--pool-size", str(pool_size),
        "--pool-languages", "python",
        "--log-format", "json",
    ]  # fmt: skip


@dataclass
class LogCount:
    """The state changes of one server's log, per operation name."""

    started: Counter[str] = field(default_factory=Counter)
    succeeded: Counter[str] = field(default_factory=Counter)
    other_ends: Counter[str] = field(default_factory=Counter)  # failed, cancelled, lease lost…
    handed_back: int = 0


def count_log(path: Path, names: set[str]) -> LogCount:
    found = LogCount()
    for line in path.read_text(errors="replace").splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        name, event = entry.get("operation"), str(entry.get("event", ""))
        if name not in names:
            continue
        if event == "operation.started":
            found.started[name] += 1
        elif event == "operation.succeeded":
            found.succeeded[name] += 1
        elif event == "operation.handed_back":
            found.handed_back += 1
        elif event in ("operation.failed", "operation.cancelled", "operation.lease_lost"):
            found.other_ends[name] += 1
    return found
