"""Shared pieces of the operations unit tests: an in-process server with its Operations stub."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.longrunning import (  # type: ignore[import-untyped, unused-ignore]
    operations_pb2,
    operations_pb2_grpc,
)

from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.conftest import Running, start_server
from tests.unit.fake_sandbox import FakeSandbox


@dataclass
class Queued:
    server: Running
    operations: Any  # google.longrunning's OperationsStub (untyped)

    async def submit(self, source: str, request_id: str = "") -> operations_pb2.Operation:
        spec = pb.ExecutionSpec(language="python", source=source.encode())
        return await self.server.stub.SubmitExecution(
            pb.SubmitExecutionRequest(spec=spec, request_id=request_id)
        )

    async def get(self, name: str) -> operations_pb2.Operation:
        return await self.operations.GetOperation(operations_pb2.GetOperationRequest(name=name))

    async def wait(self, name: str, seconds: float = 10.0) -> operations_pb2.Operation:
        request = operations_pb2.WaitOperationRequest(name=name)
        request.timeout.FromNanoseconds(int(seconds * 1e9))
        return await self.operations.WaitOperation(request)

    async def list(self, filter: str = "", page_size: int = 0, token: str = "") -> Any:
        request = operations_pb2.ListOperationsRequest(
            name="operations", filter=filter, page_size=page_size, page_token=token
        )
        return await self.operations.ListOperations(request)


def metadata(operation: operations_pb2.Operation) -> pb.ExecutionMetadata:
    meta = pb.ExecutionMetadata()
    assert operation.metadata.Unpack(meta)
    return meta


def response(operation: operations_pb2.Operation) -> pb.ExecuteResponse:
    result = pb.ExecuteResponse()
    assert operation.response.Unpack(result)
    return result


def config_for(state_dir: Path, **values: object) -> ServerConfig:
    settings: dict[str, object] = {
        "address": "127.0.0.1:0",
        "shutdown_grace": 2.0,
        "state_dir": str(state_dir),
    }
    settings.update(values)
    return ServerConfig().with_values(**settings)


@asynccontextmanager
async def queue_server(
    state_dir: Path, sandbox: FakeSandbox | None = None, **values: object
) -> AsyncIterator[Queued]:
    server = await start_server(config_for(state_dir, **values), sandbox or FakeSandbox())
    try:
        yield Queued(server, operations_pb2_grpc.OperationsStub(server.channel))
    finally:
        server.sandbox.release()
        await server.channel.close()
        await server.app.stop()
