"""What the SDK sends with every call (token, metadata, trace context), a caller's
own channel, and the connection arguments it refuses before connecting.

The server here is a plain gRPC ExecutionService on loopback that records the
metadata of each call: the SDK's side of the contract, seen from the wire.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codebeaker.client import AsyncClient, Client
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc


class Recorder(pb_grpc.ExecutionServiceServicer):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, str]]] = []
        self._lock = threading.Lock()

    def _record(self, method: str, context: grpc.ServicerContext) -> None:
        metadata = {
            key: value if isinstance(value, str) else value.decode()
            for key, value in context.invocation_metadata()
        }
        with self._lock:
            self.calls.append((method, metadata))

    def Execute(self, request: pb.ExecuteRequest, context: grpc.ServicerContext) -> Any:
        self._record("Execute", context)
        return pb.ExecuteResponse(result=pb.ExecutionResult(status=pb.EXECUTION_STATUS_OK))

    def ExecuteStream(self, request: pb.ExecuteStreamRequest, context: grpc.ServicerContext) -> Any:
        self._record("ExecuteStream", context)
        yield pb.ExecuteStreamResponse(result=pb.ExecutionResult(status=pb.EXECUTION_STATUS_OK))

    def ListRuntimes(self, request: pb.ListRuntimesRequest, context: grpc.ServicerContext) -> Any:
        self._record("ListRuntimes", context)
        return pb.ListRuntimesResponse()

    def SubmitExecution(
        self, request: pb.SubmitExecutionRequest, context: grpc.ServicerContext
    ) -> Any:
        self._record("SubmitExecution", context)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, "not recorded")


@pytest.fixture
def recorder() -> Iterator[tuple[Recorder, str]]:
    service = Recorder()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_ExecutionServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield service, f"127.0.0.1:{port}"
    server.stop(None)


def every_call(client: Client) -> None:
    client.runtimes()
    client.execute("python", "print(1)")
    list(client.stream("python", "print(1)"))


def test_token_and_metadata_go_with_every_call_beside_the_trace_context(
    recorder: tuple[Recorder, str], spans: InMemorySpanExporter
) -> None:
    service, address = recorder
    with Client(address, token="s3cret", metadata=[("x-team", "judges")]) as client:
        every_call(client)
    assert [method for method, _ in service.calls] == ["ListRuntimes", "Execute", "ExecuteStream"]
    for _, metadata in service.calls:
        assert metadata["authorization"] == "Bearer s3cret"
        assert metadata["x-team"] == "judges"
        assert metadata["traceparent"].startswith("00-")
    assert "s3cret" not in repr(client)


async def test_the_async_client_sends_them_too(recorder: tuple[Recorder, str]) -> None:
    service, address = recorder
    async with AsyncClient(address, token="abc", metadata=[("x-team", "tutors")]) as client:
        await client.runtimes()
        await client.execute("python", "print(1)")
        [event async for event in client.stream("python", "print(1)")]
    assert len(service.calls) == 3
    assert all(m["authorization"] == "Bearer abc" for _, m in service.calls)
    assert all(m["x-team"] == "tutors" for _, m in service.calls)


def test_the_token_defaults_to_the_environment_and_an_argument_beats_it(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, address = recorder
    monkeypatch.setenv("CODEBEAKER_TOKEN", "from-env")
    for token in (None, "given", ""):
        with Client(address, token=token) as client:
            client.runtimes()
    sent = [metadata.get("authorization") for _, metadata in service.calls]
    assert sent == ["Bearer from-env", "Bearer given", None]


def test_the_cli_sends_the_token_from_its_flag_or_the_environment(
    recorder: tuple[Recorder, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from codebeaker.client.cli import main

    service, address = recorder
    monkeypatch.setenv("CODEBEAKER_TOKEN", "env-token")
    assert main(["runtimes", "--address", address]) == 0
    assert main(["runtimes", "--address", address, "--token", "flag-token"]) == 0
    sent = [metadata["authorization"] for _, metadata in service.calls]
    assert sent == ["Bearer env-token", "Bearer flag-token"]


def test_the_cli_never_prints_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from codebeaker.client.cli import main

    monkeypatch.setenv("CODEBEAKER_TOKEN", "never-shown")
    for command in ("runtimes", "run"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
    # A failed call's message does not carry it either.
    assert main(["runtimes", "--address", "127.0.0.1:9", "--timeout", "5"]) == 69
    captured = capsys.readouterr()
    assert "--token" in captured.out
    assert "never-shown" not in captured.out + captured.err


def test_a_callers_channel_is_used_and_left_open(recorder: tuple[Recorder, str]) -> None:
    service, address = recorder
    channel = grpc.insecure_channel(address)
    with Client(address, channel=channel, token="t") as client:
        client.runtimes()
    # close() left it open: the caller's channel still works.
    pb_grpc.ExecutionServiceStub(channel).ListRuntimes(pb.ListRuntimesRequest(), timeout=10)
    channel.close()
    assert service.calls[0][1]["authorization"] == "Bearer t"
    assert len(service.calls) == 2


async def test_a_callers_aio_channel_is_used_and_left_open(recorder: tuple[Recorder, str]) -> None:
    service, address = recorder
    channel = grpc.aio.insecure_channel(address)
    async with AsyncClient(channel=channel, metadata=[("x-a", "b")]) as client:
        await client.runtimes()
    await pb_grpc.ExecutionServiceStub(channel).ListRuntimes(pb.ListRuntimesRequest(), timeout=10)
    await channel.close()
    assert service.calls[0][1]["x-a"] == "b"
    assert len(service.calls) == 2


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        ({"channel": "ready", "tls": True}, "channel= is ready-made; tls cannot apply"),
        ({"channel": "ready", "ca": b"-----BEGIN x"}, "ca cannot apply"),
        ({"cert": b"-----BEGIN x"}, "cert and key go together"),
        ({"ca": "/nonexistent/ca.pem"}, "ca: cannot read /nonexistent/ca.pem"),
        ({"ca": b"junk"}, "ca: the bytes given is not PEM"),
        ({"credentials": "creds", "ca": b"-----BEGIN x"}, "drop ca/cert/key"),
        ({"metadata": [("X-Upper", "v")]}, "use lowercase"),
        ({"metadata": [("grpc-timeout", "1")]}, "no grpc- prefix"),
        ({"metadata": [("x-ok", "line\nbreak")]}, "printable ASCII"),
        ({"metadata": [("authorization", "Bearer a")], "token": "b"}, "choose one"),
        ({"token": "two words"}, "token must be printable ASCII without spaces"),
    ],
)
def test_bad_connection_arguments_are_refused_before_connecting(
    arguments: dict[str, Any], problem: str
) -> None:
    if arguments.get("channel") == "ready":
        arguments["channel"] = grpc.insecure_channel("127.0.0.1:9")
    if arguments.get("credentials") == "creds":
        arguments["credentials"] = grpc.ssl_channel_credentials()
    with pytest.raises(ValueError, match=problem):
        Client("127.0.0.1:9", **arguments)


def test_a_pem_path_may_be_a_str_or_a_path(tmp_path: Path) -> None:
    pem = tmp_path / "ca.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    # Accepted as given; whether it is a good certificate is the handshake's business.
    Client("127.0.0.1:9", ca=pem).close()
    Client("127.0.0.1:9", ca=str(pem)).close()
