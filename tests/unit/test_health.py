"""Health names through the standard health stub against the in-process server:
readiness, one name per served language, liveness, and the shutdown delay."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import (
    LIVENESS_NAME,
    SERVICE_NAME,
    Application,
    language_health_name,
)
from codebeaker.server.config import ServerConfig
from codebeaker.server.languages import CatalogConfig
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.unit.conftest import Running, start_server, status_of
from tests.unit.fake_sandbox import FakeSandbox

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def statuses(server: Running, names: list[str]) -> dict[str, int]:
    stub = health_pb2_grpc.HealthStub(server.channel)
    found = {}
    for name in names:
        found[name] = (await stub.Check(health_pb2.HealthCheckRequest(service=name))).status
    return found


async def until(server: Running, name: str, status: int) -> None:
    watch = health_pb2_grpc.HealthStub(server.channel).Watch(
        health_pb2.HealthCheckRequest(service=name)
    )
    try:
        while (await watch.read()).status != status:
            pass
    finally:
        watch.cancel()


def spec(script: str) -> pb.ExecutionSpec:
    return pb.ExecutionSpec(language="python", source=script.encode())


async def test_one_unready_language_takes_out_only_itself_and_readiness(
    config: ServerConfig,
) -> None:
    sandbox = FakeSandbox(unready_languages={"python": "image codebeaker/python missing"})
    server = await start_server(config, sandbox)
    try:
        # The second check starts only after the first one's statuses were all set.
        await sandbox.readiness_checks(2)
        languages = [spec.id for spec in Catalog.load().specs()]
        names = ["", SERVICE_NAME, LIVENESS_NAME, *map(language_health_name, languages)]
        found = await statuses(server, names)
        assert found.pop(language_health_name("python")) == NOT_SERVING
        assert found.pop("") == found.pop(SERVICE_NAME) == NOT_SERVING
        assert set(found.values()) == {SERVING}  # liveness and every other language
        assert language_health_name("javascript") == "codebeaker.v1.ExecutionService/javascript"
        # Python's image appears: its name and readiness follow.
        sandbox.unready_languages.clear()
        await until(server, language_health_name("python"), SERVING)
        await until(server, "", SERVING)
    finally:
        await server.channel.close()
        await server.app.stop()


async def test_an_engine_that_does_not_answer_takes_out_every_language_but_not_liveness(
    config: ServerConfig,
) -> None:
    sandbox = FakeSandbox(unready="Docker engine unreachable")
    server = await start_server(config, sandbox)
    try:
        await sandbox.readiness_checks(2)
        found = await statuses(
            server, ["", LIVENESS_NAME, language_health_name("c"), language_health_name("go")]
        )
        assert found == {
            "": NOT_SERVING,
            LIVENESS_NAME: SERVING,
            language_health_name("c"): NOT_SERVING,
            language_health_name("go"): NOT_SERVING,
        }
    finally:
        await server.channel.close()
        await server.app.stop()


async def test_shutdown_delay_keeps_taking_calls_while_not_serving(config: ServerConfig) -> None:
    # Long enough for the calls below; the stop ends once it has passed.
    server = await start_server(config.with_values(shutdown_delay=1.5), FakeSandbox())
    try:
        await until(server, "", SERVING)
        stopping = asyncio.ensure_future(server.app.stop())
        await until(server, "", NOT_SERVING)
        await until(server, LIVENESS_NAME, NOT_SERVING)  # draining: the process is going away
        assert (await statuses(server, [language_health_name("python")])) == {
            language_health_name("python"): NOT_SERVING
        }
        # A new call, after health said NOT_SERVING, still runs to its end.
        result = (await server.stub.Execute(pb.ExecuteRequest(spec=spec("out late")))).result
        assert result.stdout == b"late\n"
        assert not stopping.done()
        await stopping
        assert server.sandbox.closed
    finally:
        await server.channel.close()


async def test_a_served_subset_is_all_readiness_waits_for(config: ServerConfig) -> None:
    sandbox = FakeSandbox(unready_languages={"go": "image codebeaker/go missing"})
    app = Application(config, sandbox, CatalogConfig(languages="py,c").catalog())
    port = await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    server = Running(app, sandbox, channel, pb_grpc.ExecutionServiceStub(channel))
    try:
        await until(server, "", SERVING)  # go is not served: its image does not matter
        found = await statuses(server, [language_health_name("python"), language_health_name("c")])
        assert set(found.values()) == {SERVING}
        stub = health_pb2_grpc.HealthStub(server.channel)
        with pytest.raises(aio.AioRpcError) as caught:
            await stub.Check(health_pb2.HealthCheckRequest(service=language_health_name("go")))
        assert status_of(caught.value) == grpc.StatusCode.NOT_FOUND
    finally:
        await server.channel.close()
        await app.stop()
