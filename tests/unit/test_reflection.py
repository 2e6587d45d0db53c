"""Server reflection lets generic tools (grpcurl, Postman) discover the API."""

from __future__ import annotations

from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.unit.conftest import Running


async def test_reflection_lists_our_service_and_health(running: Running) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(running.channel)
    call = stub.ServerReflectionInfo()
    await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
    response = await call.read()
    await call.done_writing()
    names = {service.name for service in response.list_services_response.service}
    assert {"codebeaker.v1.ExecutionService", "grpc.health.v1.Health"} <= names
