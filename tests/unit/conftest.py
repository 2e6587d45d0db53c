"""Fixtures for unit tests: an in-process server on port 0 over a fake sandbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.unit.fake_sandbox import FakeSandbox


@dataclass
class Running:
    app: Application
    sandbox: FakeSandbox
    channel: aio.Channel
    stub: pb_grpc.ExecutionServiceAsyncStub


async def start_server(config: ServerConfig, sandbox: FakeSandbox) -> Running:
    app = Application(config, sandbox, Catalog.load())
    port = await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    return Running(app, sandbox, channel, pb_grpc.ExecutionServiceStub(channel))


@pytest.fixture
def config(tmp_path_factory: pytest.TempPathFactory) -> ServerConfig:
    return ServerConfig().with_values(
        address="127.0.0.1:0",
        shutdown_grace=2.0,
        state_dir=str(tmp_path_factory.mktemp("state")),
    )


@pytest.fixture
async def running(config: ServerConfig) -> AsyncIterator[Running]:
    server = await start_server(config, FakeSandbox())
    yield server
    server.sandbox.release()
    await server.channel.close()
    await server.app.stop()


def status_of(error: BaseException) -> grpc.StatusCode:
    assert isinstance(error, aio.AioRpcError), error
    code: grpc.StatusCode = error.code()
    return code
