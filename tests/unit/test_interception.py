"""Both interceptors over the RPC kinds ExecutionService has none of: bidi and client-streaming.

A toy service under `codebeaker.` (so the error interceptor maps it) on a real
grpc.aio server, with the interceptors installed as the application installs
them: telemetry outside, errors inside. Each request names what its answer
does: an echo, a domain error, a crash, or a hang.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from grpc import aio
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from codebeaker.runtimes.errors import CapacityExhausted, InvalidRequest
from codebeaker.server.errors import ErrorInterceptor
from codebeaker.server.metrics import Metrics
from codebeaker.server.rpc_telemetry import TelemetryInterceptor
from codebeaker.v1 import execution_pb2 as pb

SERVICE = "codebeaker.test.Toy"
Context = aio.ServicerContext[pb.Runtime, pb.Runtime]
BIDI = ["Chat", "ChatByReading"]  # an async generator, and a coroutine using context.read/write
GARBAGE = pb.Runtime(language="python").SerializeToString()[:-2]  # a truncated string field


class ToyService:
    """Answers each request as its word says; `hanging` is set once a call hangs."""

    def __init__(self) -> None:
        self.hanging = asyncio.Event()

    async def answer(self, request: pb.Runtime) -> pb.Runtime:
        word = request.language
        if word == "invalid":
            raise InvalidRequest("spec.language", "not a word we know")
        if word == "full":
            raise CapacityExhausted("every slot is busy", retry_after=1.5)
        if word == "crash":
            raise RuntimeError("secret detail")
        if word == "hang":
            self.hanging.set()
            await asyncio.Event().wait()  # until the call is cancelled
        return pb.Runtime(language=f"echo {word}")

    async def chat(
        self, requests: AsyncIterator[pb.Runtime], context: Context
    ) -> AsyncIterator[pb.Runtime]:
        async for request in requests:
            yield await self.answer(request)

    async def chat_by_reading(self, requests: AsyncIterator[pb.Runtime], context: Context) -> None:
        while True:
            request: object = await context.read()
            if request is aio.EOF:
                return
            assert isinstance(request, pb.Runtime)
            await context.write(await self.answer(request))

    async def gather(self, requests: AsyncIterator[pb.Runtime], context: Context) -> pb.Runtime:
        answers = [(await self.answer(request)).language async for request in requests]
        return pb.Runtime(language=", ".join(answers))

    def handler(self) -> grpc.GenericRpcHandler:
        parse, serialize = pb.Runtime.FromString, pb.Runtime.SerializeToString
        handlers = {
            "Chat": grpc.stream_stream_rpc_method_handler(self.chat, parse, serialize),
            "ChatByReading": grpc.stream_stream_rpc_method_handler(
                self.chat_by_reading, parse, serialize
            ),
            "Gather": grpc.stream_unary_rpc_method_handler(self.gather, parse, serialize),
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)


class ObservedMetrics(Metrics):
    """The application's metrics, telling the test when an RPC's telemetry is complete.

    The server sends an aborted call's status before its interceptors unwind, so
    the client may hear it first; the span ends in the same unwinding, right
    after `rpc_end`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.ended = 0
        self._changed = asyncio.Event()

    def rpc_end(self, kind: str, service: str, method: str, code: str, seconds: float) -> None:
        super().rpc_end(kind, service, method, code, seconds)
        self.ended += 1
        self._changed.set()

    async def wait_ended(self, count: int) -> None:
        async with asyncio.timeout(10):
            while self.ended < count:
                self._changed.clear()
                await self._changed.wait()

    def sample(self, name: str, kind: str, method: str, **labels: str) -> float:
        labels |= {"grpc_type": kind, "grpc_service": SERVICE, "grpc_method": method}
        return self.registry.get_sample_value(name, labels) or 0.0


@dataclass
class Toy:
    service: ToyService
    channel: aio.Channel
    metrics: ObservedMetrics

    def bidi(self, method: str) -> aio.StreamStreamMultiCallable[pb.Runtime, pb.Runtime]:
        return self.channel.stream_stream(
            f"/{SERVICE}/{method}", pb.Runtime.SerializeToString, pb.Runtime.FromString
        )

    def client_stream(self) -> aio.StreamUnaryMultiCallable[pb.Runtime, pb.Runtime]:
        return self.channel.stream_unary(
            f"/{SERVICE}/Gather", pb.Runtime.SerializeToString, pb.Runtime.FromString
        )


@pytest.fixture
async def toy() -> AsyncIterator[Toy]:
    metrics = ObservedMetrics()
    server = aio.server(
        interceptors=[TelemetryInterceptor(metrics), ErrorInterceptor()],
        options=[("grpc.so_reuseport", 0)],
    )
    service = ToyService()
    server.add_generic_rpc_handlers([service.handler()])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    yield Toy(service, channel, metrics)
    await channel.close()
    await server.stop(None)
    metrics.close()


def words(*names: str) -> list[pb.Runtime]:
    return [pb.Runtime(language=name) for name in names]


async def bidi_failure(toy: Toy, method: str, *names: str) -> tuple[list[str], aio.AioRpcError]:
    """The responses that arrived, and the error the call ended with."""
    seen = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for response in toy.bidi(method)(iter(words(*names))):
            seen.append(response.language)
    return seen, caught.value


def server_spans(spans: InMemorySpanExporter, method: str) -> list[ReadableSpan]:
    return [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.name == f"{SERVICE}/{method}"
    ]


@pytest.mark.parametrize("method", BIDI)
async def test_bidi_answers_every_request(toy: Toy, method: str) -> None:
    responses = [r.language async for r in toy.bidi(method)(iter(words("one", "two")))]
    assert responses == ["echo one", "echo two"]


@pytest.mark.parametrize("method", BIDI)
async def test_a_domain_error_mid_stream_arrives_after_the_responses_before_it(
    toy: Toy, method: str
) -> None:
    seen, error = await bidi_failure(toy, method, "one", "two", "invalid", "three")
    assert seen == ["echo one", "echo two"]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "spec.language: not a word we know"


@pytest.mark.parametrize("method", BIDI)
async def test_no_capacity_mid_stream_is_resource_exhausted_with_a_retry_hint(
    toy: Toy, method: str
) -> None:
    seen, error = await bidi_failure(toy, method, "one", "full")
    assert seen == ["echo one"]
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details() == "every slot is busy"
    assert dict(error.trailing_metadata() or ())["retry-after"] == "1.5"


@pytest.mark.parametrize("method", BIDI)
async def test_a_crash_mid_stream_is_internal_and_logged_not_told(
    toy: Toy, method: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="codebeaker.server.errors"):
        seen, error = await bidi_failure(toy, method, "one", "crash")
    assert seen == ["echo one"]
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (error.details() or "")
    (record,) = [r for r in caplog.records if r.name == "codebeaker.server.errors"]
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)


@pytest.mark.parametrize("method", BIDI)
async def test_each_streamed_request_that_does_not_parse_is_invalid_argument(
    toy: Toy, method: str
) -> None:
    raw: aio.StreamStreamMultiCallable[bytes, bytes] = toy.channel.stream_stream(
        f"/{SERVICE}/{method}"
    )
    valid = pb.Runtime(language="one").SerializeToString()
    seen = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for response in raw(iter([valid, GARBAGE])):
            seen.append(pb.Runtime.FromString(response).language)
    assert seen == ["echo one"]  # the first message parsed; the second did not
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (caught.value.details() or "")


async def test_bidi_calls_are_counted_and_traced_by_their_status(
    toy: Toy, spans: InMemorySpanExporter
) -> None:
    assert [r.language async for r in toy.bidi("Chat")(iter(words("one")))] == ["echo one"]
    await bidi_failure(toy, "Chat", "one", "invalid")
    await bidi_failure(toy, "Chat", "crash")
    await toy.metrics.wait_ended(3)
    started = toy.metrics.sample("grpc_server_started_total", "bidi_stream", "Chat")
    assert started == 3
    for code in ("OK", "INVALID_ARGUMENT", "INTERNAL"):
        handled = "grpc_server_handled_total"
        assert toy.metrics.sample(handled, "bidi_stream", "Chat", grpc_code=code) == 1
    statuses = {
        s.attributes["rpc.grpc.status_code"]: s.status.status_code
        for s in server_spans(spans, "Chat")
        if s.attributes is not None
    }
    # Only the server's fault is an error; the caller's mistake is not.
    assert statuses == {
        grpc.StatusCode.OK.value[0]: StatusCode.UNSET,
        grpc.StatusCode.INVALID_ARGUMENT.value[0]: StatusCode.UNSET,
        grpc.StatusCode.INTERNAL.value[0]: StatusCode.ERROR,
    }


async def test_a_cancelled_bidi_call_is_counted_cancelled_and_not_mapped(
    toy: Toy, caplog: pytest.LogCaptureFixture
) -> None:
    call = toy.bidi("Chat")()
    await call.write(pb.Runtime(language="one"))
    first = await call.read()
    assert isinstance(first, pb.Runtime) and first.language == "echo one"
    await call.write(pb.Runtime(language="hang"))
    async with asyncio.timeout(10):
        await toy.service.hanging.wait()  # the handler is busy, not waiting for requests
    call.cancel()
    await toy.metrics.wait_ended(1)
    handled = "grpc_server_handled_total"
    assert toy.metrics.sample(handled, "bidi_stream", "Chat", grpc_code="CANCELLED") == 1
    assert toy.metrics.sample(handled, "bidi_stream", "Chat", grpc_code="INTERNAL") == 0
    assert [r for r in caplog.records if r.name == "codebeaker.server.errors"] == []


async def test_client_streaming_answers_once_all_requests_are_in(toy: Toy) -> None:
    response = await toy.client_stream()(iter(words("one", "two")))
    assert response.language == "echo one, echo two"


@pytest.mark.parametrize(
    ("names", "code"),
    [
        (("one", "invalid"), grpc.StatusCode.INVALID_ARGUMENT),
        (("one", "full"), grpc.StatusCode.RESOURCE_EXHAUSTED),
        (("crash",), grpc.StatusCode.INTERNAL),
    ],
)
async def test_client_streaming_errors_are_mapped_and_counted(
    toy: Toy, spans: InMemorySpanExporter, names: tuple[str, ...], code: grpc.StatusCode
) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await toy.client_stream()(iter(words(*names)))
    assert caught.value.code() == code
    assert "secret" not in (caught.value.details() or "")
    if code is grpc.StatusCode.RESOURCE_EXHAUSTED:
        assert dict(caught.value.trailing_metadata() or ())["retry-after"] == "1.5"
    await toy.metrics.wait_ended(1)
    handled = "grpc_server_handled_total"
    assert toy.metrics.sample(handled, "client_stream", "Gather", grpc_code=code.name) == 1
    (span,) = server_spans(spans, "Gather")
    assert span.attributes is not None
    assert span.attributes["rpc.grpc.status_code"] == code.value[0]


async def test_a_client_streamed_request_that_does_not_parse_is_invalid_argument(
    toy: Toy,
) -> None:
    raw: aio.StreamUnaryMultiCallable[bytes, bytes] = toy.channel.stream_unary(f"/{SERVICE}/Gather")
    with pytest.raises(aio.AioRpcError) as caught:
        await raw(iter([pb.Runtime(language="one").SerializeToString(), GARBAGE]))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid protobuf message" in (caught.value.details() or "")
