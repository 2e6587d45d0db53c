"""The real server (Application over the configured backend) in the test process, on its own loop.

`codebeaker serve` runs in a subprocess elsewhere in these tests; observability
tests need the server in-process instead, so its spans reach the test's
in-memory exporter and its metrics registry can be read. The server gets a
background thread with an event loop (as `serve` would have), and the test
thread calls it with the blocking SDK, as any caller would.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.backend import build_sandbox
from codebeaker.server.config import ServerConfig

T = TypeVar("T")


class InProcessServer:
    def __init__(self, config: ServerConfig) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.app = self.call(self._start(config))
        self.address = f"127.0.0.1:{self.app.port}"

    @staticmethod
    async def _start(config: ServerConfig) -> Application:
        catalog = Catalog.load()
        app = Application(config, build_sandbox(config, catalog), catalog)
        await app.start()
        return app

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def wait_serving(self, within: float = 60) -> None:
        with grpc.insecure_channel(self.address) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service="")
            for response in health.Watch(request, timeout=within):
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return

    def stop(self) -> None:
        try:
            self.call(self.app.stop())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=30)
            self._loop.close()


@contextmanager
def in_process_server(**settings: Any) -> Iterator[InProcessServer]:
    """A serving in-process server on 127.0.0.1:0, stopped (containers removed) after."""
    instance = f"test-inproc-{os.getpid()}-{time.monotonic_ns()}"
    # The images a `codebeaker serve` of this environment would use (CODEBEAKER_IMAGE_TAG).
    tag = os.environ.get("CODEBEAKER_IMAGE_TAG", "")
    defaults = {"address": "127.0.0.1:0", "instance": instance, "shutdown_grace": 10.0}
    config = ServerConfig().with_values(**{**defaults, "image_tag": tag, **settings})
    server = InProcessServer(config)
    try:
        server.wait_serving()
        yield server
    finally:
        server.stop()
