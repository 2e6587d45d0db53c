"""A real Redis (Debian's `redis-server`) for tests, on a free loopback port of its own.

Each server keeps its files in a temporary directory and saves no RDB snapshots;
with `appendonly=True` it keeps an append-only file there, so `stop()` then
`start()` (same port, same directory) brings the data back, as an operator's
restart would. Readiness is a PING answered with PONG, polled with a deadline.
CI installs the package (`scripts/ensure-test-tools.sh`); without it the tests
skip, except with CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.tools import require

START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def answers_ping(port: int, timeout: float = 1.0) -> bool:
    """True if a Redis on the loopback port answers PING (RESP inline command)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process that can be stopped and started again on the same port and files."""

    def __init__(self, binary: str, directory: Path, *, appendonly: bool) -> None:
        self.binary = binary
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log = directory / "redis.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        if self.running:
            return
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not answers_ping(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not answer PING:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        """SIGTERM: Redis flushes its append-only file and exits; the port is free again."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: what an out-of-memory kill or a lost machine looks like."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _end(self, how: signal.Signals) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(how)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def redis_server(*, appendonly: bool = False) -> Iterator[RedisServer]:
    """A started Redis on a free loopback port, stopped (and its files removed) afterwards."""
    binary = require("redis-server")
    with tempfile.TemporaryDirectory(prefix="cb-redis-") as tmp:
        server = RedisServer(binary, Path(tmp), appendonly=appendonly)
        for attempt in range(3):
            try:
                server.start()
                break
            except RuntimeError:
                # Another process may have taken the free port between probe and bind.
                if attempt == 2:
                    raise
                server.port = free_port()
        try:
            yield server
        finally:
            server.kill()
