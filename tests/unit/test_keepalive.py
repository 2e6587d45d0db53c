"""Connection management of the real server (over a fake sandbox), seen through a
loopback proxy the test controls: a caller that vanishes silently is cancelled
by keepalive; an aged connection is asked to go away, its calls get their grace.

The fake sandbox's `block` never ends by itself and has no wall limit, so the
only thing that can end such a call is the server's connection management.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest
from grpc import aio

from codebeaker.client import _settings
from codebeaker.runtimes.catalog import Catalog
from codebeaker.server import transport
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.proxy import LoopbackProxy
from tests.unit.fake_sandbox import FakeSandbox

BLOCKED = pb.ExecuteStreamRequest(
    spec=pb.ExecutionSpec(language="python", source=b"out up\nblock\nout done")
)


@asynccontextmanager
async def proxied(**settings: Any) -> AsyncIterator[tuple[FakeSandbox, LoopbackProxy]]:
    """The server with these settings, and a proxy in front of it."""
    config = ServerConfig().with_values(address="127.0.0.1:0", shutdown_grace=1.0, **settings)
    sandbox = FakeSandbox()
    app = Application(config, sandbox, Catalog.load())
    port = await app.start()
    try:
        with LoopbackProxy(f"127.0.0.1:{port}") as proxy:
            yield sandbox, proxy
    finally:
        sandbox.release()
        await app.stop()


async def start_blocked_call(stub: pb_grpc.ExecutionServiceAsyncStub, sandbox: FakeSandbox) -> Any:
    call = stub.ExecuteStream(BLOCKED)
    while True:
        response = await asyncio.wait_for(call.read(), 10)
        assert isinstance(response, pb.ExecuteStreamResponse), response
        if response.WhichOneof("event") == "output":
            break
    await asyncio.wait_for(sandbox.blocked.wait(), 10)
    return call


async def read_rest(call: Any) -> list[pb.ExecuteStreamResponse]:
    responses = []
    while (response := await call.read()) is not aio.EOF:
        responses.append(response)
    return responses


async def test_a_caller_that_vanishes_silently_is_cancelled_within_keepalive() -> None:
    keepalive, timeout = 0.5, 0.5
    async with proxied(keepalive_time=keepalive, keepalive_timeout=timeout) as (sandbox, proxy):
        channel = aio.insecure_channel(proxy.address)  # no keepalive of its own
        call = await start_blocked_call(pb_grpc.ExecutionServiceStub(channel), sandbox)
        proxy.blackhole()
        vanished = time.monotonic()
        await asyncio.wait_for(sandbox.idle.wait(), keepalive + timeout + 3)
        waited = time.monotonic() - vanished
        assert sandbox.running == 0 and sandbox.torn_down == [sandbox.jobs[0].execution_id]
        call.cancel()
        await channel.close()
    assert waited < keepalive + timeout + 3


async def test_the_server_keeps_a_silent_but_present_caller() -> None:
    # The same silent call without the blackhole: pings are answered, the call
    # stays until the program ends (here: until the test releases it).
    async with proxied(keepalive_time=0.2, keepalive_timeout=0.2) as (sandbox, proxy):
        async with aio.insecure_channel(proxy.address) as channel:
            call = await start_blocked_call(pb_grpc.ExecutionServiceStub(channel), sandbox)
            # Five pings (17 bytes each) from the server, each answered.
            assert await asyncio.to_thread(proxy.wait_from_server, 5 * 17, 10)
            assert sandbox.running == 1 and not call.done()
            sandbox.release()
            rest = await read_rest(call)
        assert rest[-1].result.status == pb.EXECUTION_STATUS_OK


async def test_an_aged_connection_goes_away_after_its_calls_finish() -> None:
    settings = {"max_connection_age": 0.3, "max_connection_age_grace": 30.0}
    async with (
        proxied(**settings) as (sandbox, proxy),
        aio.insecure_channel(proxy.address) as channel,
    ):
        stub = pb_grpc.ExecutionServiceStub(channel)
        call = await start_blocked_call(stub, sandbox)
        # Once the first connection is past its age, new calls open another.
        deadline = time.monotonic() + 10
        while proxy.accepted < 2 and time.monotonic() < deadline:
            await stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=5)
        assert proxy.accepted == 2
        assert 1 not in proxy.closed_by_server, "closed with a call in flight"
        # The call that began on the aged connection still finishes there.
        sandbox.release()
        rest = await read_rest(call)
        assert rest[-1].result.status == pb.EXECUTION_STATUS_OK
        assert b"done" in b"".join(r.output.data for r in rest)
        assert await asyncio.to_thread(proxy.wait_server_closed, 1, 10)


async def test_an_aged_connections_calls_are_cut_after_the_grace() -> None:
    settings = {"max_connection_age": 0.2, "max_connection_age_grace": 0.5}
    async with (
        proxied(**settings) as (sandbox, proxy),
        aio.insecure_channel(proxy.address) as channel,
    ):
        call = await start_blocked_call(pb_grpc.ExecutionServiceStub(channel), sandbox)
        await asyncio.wait_for(sandbox.idle.wait(), 10)
        with pytest.raises(aio.AioRpcError) as caught:
            await read_rest(call)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert sandbox.torn_down == [sandbox.jobs[0].execution_id]


def test_the_sdk_pings_no_more_often_than_the_server_permits() -> None:
    # A client pinging faster than this is answered GOAWAY too_many_pings.
    permitted = dict(transport.server_options(ServerConfig()))
    sdk = dict(_settings.channel_options(None))
    interval = permitted["grpc.http2.min_ping_interval_without_data_ms"]
    assert _settings.KEEPALIVE_TIME_MS == int(sdk["grpc.keepalive_time_ms"]) >= interval
    assert sdk["grpc.http2.max_pings_without_data"] == 0  # pings go on in a silent call
    # Idle clients do not ping, but the server would accept it if they did.
    assert permitted["grpc.keepalive_permit_without_calls"] == 1


def test_connection_age_is_off_by_default_and_its_grace_outlasts_a_run() -> None:
    assert "grpc.max_connection_age_ms" not in dict(transport.server_options(ServerConfig()))
    config = ServerConfig().with_values(max_connection_age=600.0)
    options = dict(transport.server_options(config))
    assert options["grpc.max_connection_age_ms"] == 600_000
    limits = config.limits
    assert options["grpc.max_connection_age_grace_ms"] == 1000 * (
        limits.max_compile_time + limits.max_wall_time + 30
    )
