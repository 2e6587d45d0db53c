"""The operations queue in a Redis that several servers share (`--queue redis://HOST:PORT/DB`).

Each record is a hash; QUEUED ids sit in a sorted set by submit order, RUNNING ids
in one by lease expiry. Every transition is one Lua script (redis_scripts.py), so
claim, renew, finish, cancel and the reclaim of an expired lease are atomic
across servers, and all of them read Redis's clock. A server that dies leaves its
lease to expire; the next claim by any server takes the job again (attempts + 1)
or ends it FAILED once it has had max_attempts claims. Done records carry the
result TTL as a Redis expiry; `expire()` removes them and their index entries.

`wait()` does not poll: one subscriber per store listens on a channel where every
script that ends (or deletes) a record publishes its id, and wakes that record's
waiters; each waiter also re-reads at least every WAIT_RECHECK seconds, so a
message lost while the subscriber reconnects costs seconds, not the whole wait.

Redis unreachable (down, restarting, still loading its data) is StoreUnavailable
for every call; the client reconnects on the next call, so the store recovers by
itself when Redis is back.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import math
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.server.logs import event
from codebeaker.server.operations import redis_scripts as scripts
from codebeaker.server.operations.store import (
    OperationRecord,
    OperationState,
    QueueFull,
    QueueStats,
    StoreUnavailable,
    TenantQueueFull,
    operation_not_found,
)

__all__ = ["DEFAULT_PREFIX", "RedisOperationStore"]

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "codebeaker:{ops}:"
WAIT_RECHECK = 2.0  # seconds: a waiter re-reads its record at least this often
QUEUE_FULL_RETRY_AFTER = 1.0
_LIST_BATCH = 100
_EXPIRE_BATCH = 500
_TOKEN_PREFIX = b"redis-ops:"
_SCRIPTS = ("SUBMIT", "CLAIM", "RENEW", "FINISH", "RELEASE", "CANCEL", "DELETE", "EXPIRE", "STATS")
# Redis's own answers for "cannot serve now" (a replica, a failed save, out of memory).
_UNAVAILABLE_REPLIES = ("READONLY", "MISCONF", "OOM", "LOADING", "MASTERDOWN", "CLUSTERDOWN")


def _new_id() -> str:
    return uuid.uuid4().hex


class RedisOperationStore:
    """OperationStore (server/operations/store.py) over one Redis database shared by servers."""

    def __init__(
        self,
        url: str,
        *,
        result_ttl: float | None = None,
        prefix: str = DEFAULT_PREFIX,
        new_id: Callable[[], str] = _new_id,
        timeout: float = 5.0,
    ) -> None:
        self._where = url.split("@")[-1]  # never a password in a message
        self._prefix = prefix
        self._ttl_ms = str(max(1, math.ceil(result_ttl * 1000))) if result_ttl else "0"
        self._new_id = new_id
        # A stale pooled connection (Redis restarted) fails once, then the retry reconnects;
        # an unreachable Redis fails within ~timeout instead of hanging a call.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 2.0),
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 2),
            health_check_interval=30,
        )
        self._scripts = {
            name: self._redis.register_script(getattr(scripts, name)) for name in _SCRIPTS
        }
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._persistence_checked = False
        self._lease_expiries = 0

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, OSError) as error:
            raise StoreUnavailable(f"the queue's Redis at {self._where}: {error}") from error
        except ResponseError as error:
            if str(error).startswith(_UNAVAILABLE_REPLIES):
                raise StoreUnavailable(f"the queue's Redis at {self._where}: {error}") from error
            raise

    async def _run(self, script: str, *args: str | bytes | float) -> Any:
        with self._reachable():
            return await self._scripts[script](args=[self._prefix, self._ttl_ms, *args])

    def _key(self, id: str) -> str:
        return f"{self._prefix}op:{id}"

    async def submit(
        self,
        tenant: str,
        request_id: str,
        spec: bytes,
        trace_context: Mapping[str, str],
        *,
        max_queued: int,
        tenant_max_queued: int | None = None,
    ) -> tuple[OperationRecord, bool]:
        trace = json.dumps(dict(trace_context), sort_keys=True)
        tenant_max = -1 if tenant_max_queued is None else max(0, tenant_max_queued)
        answer = await self._run(
            "SUBMIT",
            tenant,
            request_id,
            spec,
            trace,
            max(0, max_queued),
            self._new_id(),
            tenant_max,
        )
        if int(answer[0]) == -2:
            raise TenantQueueFull(tenant, int(answer[1]))
        if int(answer[0]) < 0:
            raise QueueFull(
                f"{max_queued} operations are queued already; retry later",
                retry_after=QUEUE_FULL_RETRY_AFTER,
            )
        return _record(answer[1]), int(answer[0]) == 1

    async def get(self, tenant: str, id: str) -> OperationRecord:
        with self._reachable():
            flat = cast(Mapping[bytes, bytes], await self._redis.hgetall(self._key(id)))
        record = _record_from_mapping(flat) if flat else None
        if record is None or record.tenant != tenant:
            raise operation_not_found(id)
        return record

    async def list(
        self,
        tenant: str,
        *,
        states: frozenset[OperationState] | None,
        page_size: int,
        page_token: str,
    ) -> tuple[list[OperationRecord], str]:
        page_size = max(1, page_size)
        below = _decode_token(page_token) if page_token else None
        index = f"{self._prefix}t:{tenant}"
        found: list[tuple[OperationRecord, int]] = []
        # One record past the page tells whether there is a next page.
        while len(found) <= page_size:
            top: str = "+inf" if below is None else f"({below}"
            with self._reachable():
                batch = cast(
                    list[tuple[bytes, float]],
                    await self._redis.zrange(
                        index, top, "-inf", desc=True, byscore=True, offset=0, num=_LIST_BATCH,
                        withscores=True,
                    ),
                )  # fmt: skip
                async with self._redis.pipeline(transaction=False) as pipe:
                    for id, _ in batch:
                        pipe.hgetall(self._key(id.decode()))
                    flats = cast(list[Mapping[bytes, bytes]], await pipe.execute() if batch else [])
            for (_, score), flat in zip(batch, flats, strict=True):
                below = int(score)
                record = _record_from_mapping(flat) if flat else None  # gone: its TTL ran out
                if record is not None and (states is None or record.state in states):
                    found.append((record, below))
            if len(batch) < _LIST_BATCH:
                break
        page = found[:page_size]
        token = _encode_token(page[-1][1]) if len(found) > page_size else ""
        return [record for record, _ in page], token

    async def count_queued(self, tenant: str) -> int:
        with self._reachable():
            return int(await self._redis.zcard(f"{self._prefix}tq:{tenant}"))

    async def claim(
        self, worker: str, lease_seconds: float, max_attempts: int
    ) -> OperationRecord | None:
        seen, flat = await self._run("CLAIM", worker, float(lease_seconds), max(1, max_attempts))
        self._lease_expiries += int(seen)
        return _record(flat) if flat else None

    async def renew(self, id: str, worker: str, lease_seconds: float) -> OperationRecord | None:
        flat = await self._run("RENEW", id, worker, float(lease_seconds))
        return _record(flat) if flat else None

    async def finish(
        self,
        id: str,
        worker: str,
        state: OperationState,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
    ) -> bool:
        if not state.done:
            raise ValueError(f"finish needs a done state, not {state}")
        has_result, has_error = ("0", "1")[result is not None], ("0", "1")[error is not None]
        answer = await self._run(
            "FINISH", id, worker, state.value, has_result, result or b"", has_error, error or b""
        )
        return int(answer) == 1

    async def release(self, id: str, worker: str) -> OperationState | None:
        left = await self._run("RELEASE", id, worker)
        return OperationState(left.decode()) if left else None

    async def cancel(self, tenant: str, id: str) -> OperationRecord:
        flat = await self._run("CANCEL", tenant, id)
        if not flat:
            raise operation_not_found(id)
        return _record(flat)

    async def delete(self, tenant: str, id: str) -> None:
        if int(await self._run("DELETE", tenant, id)) != 1:
            raise operation_not_found(id)

    async def wait(self, tenant: str, id: str, timeout: float) -> OperationRecord:  # noqa: ASYNC109
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        woken = asyncio.Event()
        self._waiters.setdefault(id, set()).add(woken)
        self._start_listener()
        try:
            while True:
                woken.clear()  # before the read: a publish after it wakes the next wait
                record = await self.get(tenant, id)
                left = deadline - loop.time()
                if record.done or left <= 0:
                    return record
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, WAIT_RECHECK))
        finally:
            waiters = self._waiters.get(id)
            if waiters is not None:
                waiters.discard(woken)
                if not waiters:
                    del self._waiters[id]

    def _start_listener(self) -> None:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="redis-ops-listener")

    async def _listen(self) -> None:
        channel = f"{self._prefix}done"
        while self._waiters:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(channel)
                    self._wake(list(self._waiters))  # whatever ended while we were away
                    while self._waiters:
                        message = await pubsub.get_message(timeout=1.0)
                        if message is not None and message.get("type") == "message":
                            self._wake([message["data"].decode()])
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                log.debug("operations queue subscriber lost Redis: %s", error)
                await asyncio.sleep(0.5)

    def _wake(self, ids: Sequence[str]) -> None:
        for id in ids:
            for woken in self._waiters.get(id, ()):
                woken.set()

    async def expire(self, older_than: float) -> int:
        removed = 0
        while True:
            batch = int(await self._run("EXPIRE", f"{older_than:.6f}", _EXPIRE_BATCH))
            removed += batch
            if batch < _EXPIRE_BATCH:
                return removed

    async def stats(self) -> QueueStats:
        depth, running, age, succeeded, failed, cancelled = await self._run("STATS")
        return QueueStats(
            depth=int(depth),
            oldest_queued_age=float(age),
            running=int(running),
            lease_expiries=self._lease_expiries,  # found by this store's claims
            by_state={
                OperationState.QUEUED: int(depth),
                OperationState.RUNNING: int(running),
                OperationState.SUCCEEDED: int(succeeded),
                OperationState.FAILED: int(failed),
                OperationState.CANCELLED: int(cancelled),
            },
        )

    async def ping(self) -> None:
        with self._reachable():
            await self._redis.ping()
        if not self._persistence_checked:
            self._persistence_checked = True
            await self._warn_without_persistence()

    async def _warn_without_persistence(self) -> None:
        # "Never lost" holds across a Redis restart only if Redis keeps its data on disk.
        with contextlib.suppress(RedisError):
            info = cast(Mapping[str, object], await self._redis.info("persistence"))
            if str(info.get("aof_enabled", "1")) == "0":
                event(
                    log,
                    logging.WARNING,
                    "operation.store_not_durable",
                    f"the queue's Redis at {self._where} has no append-only file: a Redis "
                    "restart loses what was queued since its last snapshot (appendonly yes)",
                    store=self._where,
                )

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        await self._redis.aclose()


def _encode_token(below: int) -> str:
    return base64.urlsafe_b64encode(_TOKEN_PREFIX + str(below).encode()).decode()


def _decode_token(token: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(token.encode())
        if raw.startswith(_TOKEN_PREFIX):
            return int(raw[len(_TOKEN_PREFIX) :].decode())
    except (binascii.Error, ValueError, UnicodeError):
        pass
    raise InvalidRequest(
        "page_token", "not a page token this server issued", reason=Reason.VALUE_INVALID
    )


def _record(flat: Sequence[bytes]) -> OperationRecord:
    return _record_from_mapping(dict(zip(flat[::2], flat[1::2], strict=True)))


def _record_from_mapping(fields: Mapping[bytes, bytes]) -> OperationRecord:
    def text(name: str) -> str:
        return fields.get(name.encode(), b"").decode()

    def when(name: str) -> float | None:
        value = fields.get(name.encode())
        return float(value) if value else None

    trace = json.loads(fields.get(b"trace") or b"{}")
    return OperationRecord(
        id=text("id"),
        tenant=text("tenant"),
        request_id=text("rid"),
        state=OperationState(text("state")),
        spec=fields.get(b"spec", b""),
        trace_context={str(k): str(v) for k, v in cast(dict[str, str], trace).items()},
        create_time=float(fields[b"ctime"]),
        start_time=when("stime"),
        end_time=when("etime"),
        attempts=int(fields.get(b"attempts", b"0")),
        result=fields.get(b"result"),
        error=fields.get(b"error"),
        cancel_requested=fields.get(b"cancel") == b"1",
        worker=text("worker"),
        lease_expires=when("lease"),
    )
