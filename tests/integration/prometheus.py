"""A real Prometheus server (Debian's `prometheus`) for tests, on a free loopback port.

The test writes a config that scrapes only the given loopback targets every
second, keeps the TSDB in a temporary directory, and asks questions through
the HTTP API. Everything outside the test process is observed by polling with
a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import json
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.tools import require

START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query's result vector (raises on a PromQL error)."""
        answer = _get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql}))
        if answer.get("status") != "success":
            raise AssertionError(f"{promql}: {answer}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def wait_for(
        self, promql: str, done: Callable[[list[dict[str, Any]]], bool], within: float = 30.0
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        result = self.query(promql)
        while not done(result) and time.monotonic() < deadline:
            time.sleep(0.2)
            result = self.query(promql)
        return result


def _config(targets: Sequence[str]) -> str:
    # JSON is YAML, which Prometheus reads.
    return json.dumps(
        {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [
                {"job_name": "codebeaker", "static_configs": [{"targets": list(targets)}]}
            ],
        }
    )


@contextmanager
def prometheus(targets: Sequence[str]) -> Iterator[Prometheus]:
    binary = require("prometheus")
    with tempfile.TemporaryDirectory(prefix="cb-prometheus-") as tmp:
        config = Path(tmp, "prometheus.yml")
        config.write_text(_config(targets))
        for _ in range(3):  # another process may take the free port first
            port = free_port()
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp}/data",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            url = f"http://127.0.0.1:{port}"
            if _ready(url, process):
                break
            process.kill()
            process.wait(timeout=10)
        else:
            raise RuntimeError("prometheus did not start")
        try:
            yield Prometheus(url)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.1)
    return False
