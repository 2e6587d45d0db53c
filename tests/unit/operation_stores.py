"""What the operation store tests share: a spec and trace carrier, a Redis store on a test's
own key prefix, and waiting for a condition with a deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from codebeaker.server.operations.redis_store import RedisOperationStore
from tests.redis_server import RedisServer

T = TypeVar("T")
SPEC = b"\x0a\x06python\x00\xff spec bytes"
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


def redis_store(
    server: RedisServer, prefix: str, *, result_ttl: float | None = None
) -> RedisOperationStore:
    return RedisOperationStore(server.url, prefix=prefix, timeout=2.0, result_ttl=result_ttl)


async def eventually(
    probe: Callable[[], Awaitable[T | None]], *, within: float = 10.0, what: str = "condition"
) -> T:
    """The probe's first truthy answer, asked every 50 ms until `within` seconds have passed."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {within} s")
        await asyncio.sleep(0.05)
