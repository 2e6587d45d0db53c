"""A CodeBeaker server as a subprocess, started and stopped by the bench.

Each server gets its own `--instance`, so its containers carry
`io.codebeaker.owner=<instance>` and nothing else is touched when they are
swept. The server's log goes to a file (a pipe nobody drains would stall it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import docker

from bench.engine import api_client
from bench.stats import Abort

OWNER_LABEL = "io.codebeaker.owner"
LISTENING = re.compile(r"listening on \S+ \(port (\d+)\)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def codebeaker_command() -> list[str]:
    exe = Path(sys.executable).with_name("codebeaker")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "codebeaker.client"]


def supports_flag(flag: str) -> bool:
    """Whether this checkout's server has `flag` yet (an older checkout measured as a baseline)."""
    done = subprocess.run(
        [*codebeaker_command(), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    return flag in done.stdout


def supports_pool_flag() -> bool:
    return supports_flag("--pool-size")


class ServerError(RuntimeError):
    pass


class ServerGone(Abort):
    """The server process exited while being measured."""


class ServerProcess:
    def __init__(self, instance: str, flags: list[str], log_path: Path) -> None:
        self.instance = instance
        self.flags = flags
        self.log_path = log_path
        self.address = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> str:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            *codebeaker_command(),
            "serve",
            "--address",
            "127.0.0.1:0",
            "--instance",
            self.instance,
            "--log-level",
            "info",
            "--shutdown-grace",
            "5",
            *self.flags,
        ]
        with self.log_path.open("wb") as log:
            # Its own session: a Ctrl-C on the bench reaches the bench alone,
            # which then stops the server in order.
            self._process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            found = LISTENING.search(self.log_path.read_text(errors="replace"))
            if found:
                self.address = f"127.0.0.1:{found.group(1)}"
                return self.address
            if self._process.poll() is not None:
                break
            time.sleep(0.05)
        tail = self.log_path.read_text(errors="replace")[-1500:]
        self.stop()
        raise ServerError(f"server {self.instance} did not start: {tail.strip()}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)
        sweep_owner(self.instance)

    @property
    def pid(self) -> int:
        """The server's process id (the `codebeaker` entry point is the server itself)."""
        if self._process is None:
            raise ServerGone(f"server {self.instance} is not running")
        return self._process.pid

    def check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise ServerGone(f"server {self.instance} exited; see {self.log_path}")

    def wait_for_pool(self, expected: int, timeout: float) -> bool:
        """Waits until this server's containers are exactly `expected`, all running.

        That is a full pool with every used container torn down: an idle server.
        """
        api = api_client()
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                found = api.containers(
                    all=True, filters={"label": f"{OWNER_LABEL}={self.instance}"}
                )
                if len(found) == expected and all(c.get("State") == "running" for c in found):
                    return True
                time.sleep(0.05)
            return False
        finally:
            api.close()


def sweep_owner(instance: str) -> int:
    """Removes whatever a (possibly killed) server of ours left behind."""
    api = api_client()
    try:
        left = api.containers(all=True, quiet=True, filters={"label": f"{OWNER_LABEL}={instance}"})
        for item in left:
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(item["Id"], force=True)
        return len(left)
    finally:
        api.close()
