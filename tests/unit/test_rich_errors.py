"""RPC errors carry `google.rpc.Status` details: ErrorInfo always, and BadRequest,
RetryInfo, QuotaFailure where they apply (DESIGN.md § Errors).

The details are read the way any caller reads them, with grpcio-status'
`from_call` on the failed call: first through the real server over the
FakeSandbox, then, for errors no ExecutionService path raises yet (tenancy,
resources), through a toy service on a real grpc.aio server with the error
interceptor installed as the application installs it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.rpc import (  # type: ignore[import-untyped, unused-ignore]
    error_details_pb2,
    status_pb2,
)
from grpc import aio
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.runtimes.errors import (
    CodeBeakerError,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    Reason,
    SandboxFailure,
    Unauthenticated,
)
from codebeaker.server.config import ServerConfig
from codebeaker.server.errors import ErrorInterceptor
from codebeaker.v1 import execution_pb2 as pb
from tests.unit.conftest import Running, start_server
from tests.unit.fake_sandbox import FakeSandbox

README = Path(__file__).resolve().parents[2] / "README.md"
M = TypeVar("M", bound=Message)


@dataclass
class Rich:
    """A failed call's status and its details, unpacked by type."""

    code: grpc.StatusCode
    message: str
    details: list[Message] = field(default_factory=list)
    trailing: dict[str, str | bytes] = field(default_factory=dict)

    def one(self, kind: type[M]) -> M:
        (found,) = [d for d in self.details if isinstance(d, kind)]
        return found

    @property
    def info(self) -> error_details_pb2.ErrorInfo:
        return self.one(error_details_pb2.ErrorInfo)

    @property
    def violations(self) -> list[tuple[str, str]]:
        bad = self.one(error_details_pb2.BadRequest)
        return [(v.field, v.description) for v in bad.field_violations]

    @property
    def retry_delay(self) -> float:
        retry = self.one(error_details_pb2.RetryInfo)
        seconds: float = retry.retry_delay.ToNanoseconds() / 1e9
        return seconds


KINDS: dict[str, type[Message]] = {
    kind.DESCRIPTOR.full_name: kind
    for kind in (
        error_details_pb2.ErrorInfo,
        error_details_pb2.BadRequest,
        error_details_pb2.RetryInfo,
        error_details_pb2.QuotaFailure,
        error_details_pb2.ResourceInfo,
    )
}


def rich(error: BaseException) -> Rich:
    assert isinstance(error, aio.AioRpcError), error
    status: status_pb2.Status | None = rpc_status.from_call(error)
    assert status is not None, "no grpc-status-details-bin trailer"
    found = Rich(error.code(), status.message, trailing=dict(error.trailing_metadata() or ()))
    for packed in status.details:
        detail = KINDS[packed.TypeName()]()
        packed.Unpack(detail)
        found.details.append(detail)
    return found


def spec(source: str, language: str = "python", **fields: object) -> pb.ExecutionSpec:
    return pb.ExecutionSpec(language=language, source=source.encode(), **fields)  # type: ignore[arg-type]


async def refused(running: Running, spec_: pb.ExecutionSpec) -> Rich:
    with pytest.raises(aio.AioRpcError) as caught:
        await running.stub.Execute(pb.ExecuteRequest(spec=spec_))
    return rich(caught.value)


async def test_an_unknown_language_names_the_field_and_the_reason(running: Running) -> None:
    error = await refused(running, spec("out x", language="cobol-9000"))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message.startswith("spec.language: unknown language 'cobol-9000'")
    assert (error.info.reason, error.info.domain) == ("LANGUAGE_UNKNOWN", "codebeaker")
    ((name, description),) = error.violations
    assert name == "spec.language"
    assert description.startswith("unknown language 'cobol-9000'; known languages: ")


async def test_a_limit_above_the_maximum_is_limit_above_maximum(running: Running) -> None:
    limits = pb.ResourceLimits(wall_time=Duration(seconds=100_000))
    error = await refused(running, spec("out x", limits=limits))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == "LIMIT_ABOVE_MAXIMUM"
    assert [name for name, _ in error.violations] == ["spec.limits.wall_time"]
    assert "above the server's maximum" in error.violations[0][1]


async def test_a_limit_that_is_not_positive_has_its_own_reason(running: Running) -> None:
    error = await refused(running, spec("out x", limits=pb.ResourceLimits(memory_bytes=-1)))
    assert error.info.reason == "LIMIT_NOT_POSITIVE"
    assert [name for name, _ in error.violations] == ["spec.limits.memory_bytes"]


@pytest.mark.parametrize(
    ("files", "culprit", "reason"),
    [
        (["../escape.py"], "spec.files[0].path", "PATH_INVALID"),
        (["main.py", "/etc/passwd"], "spec.files[1].path", "PATH_INVALID"),
        (["a.py", "a.py"], "spec.files[1].path", "PATH_DUPLICATE"),
        (["lib", "lib/x.py"], "spec.files[1].path", "PATH_CONFLICT"),
    ],
)
async def test_a_bad_file_path_names_the_file_by_its_index(
    running: Running, files: list[str], culprit: str, reason: str
) -> None:
    sent = pb.ExecutionSpec(
        language="python", files=[pb.File(path=path, content=b"out x") for path in files]
    )
    error = await refused(running, sent)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.info.reason == reason
    assert [name for name, _ in error.violations] == [culprit]


async def test_a_program_too_large_and_a_missing_language_have_their_reasons(
    running: Running, config: ServerConfig
) -> None:
    too_large = await refused(running, spec("x" * (config.limits.max_source + 1)))
    assert too_large.info.reason == "TOO_LARGE"
    assert [name for name, _ in too_large.violations] == ["spec.source"]
    required = await refused(running, spec("out x", language=" "))
    assert required.info.reason == "FIELD_REQUIRED"
    assert [name for name, _ in required.violations] == ["spec.language"]


async def test_a_request_that_does_not_parse_is_a_bad_request_about_the_whole_message(
    running: Running,
) -> None:
    raw: aio.UnaryUnaryMultiCallable[bytes, bytes] = running.channel.unary_unary(
        "/codebeaker.v1.ExecutionService/Execute"
    )
    garbage = pb.ExecuteRequest(spec=spec("out x")).SerializeToString()[:-3]
    with pytest.raises(aio.AioRpcError) as caught:
        await raw(garbage)
    error = rich(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message.startswith("the request is not a valid protobuf message")
    assert error.info.reason == "REQUEST_UNPARSABLE"
    assert [name for name, _ in error.violations] == [""]


async def test_no_capacity_is_resource_exhausted_with_retry_info(config: ServerConfig) -> None:
    server = await start_server(
        config.with_values(max_concurrency=1, admission_wait=0.2), FakeSandbox()
    )
    try:
        holder = asyncio.ensure_future(server.stub.Execute(pb.ExecuteRequest(spec=spec("block"))))
        await server.sandbox.blocked.wait()
        with pytest.raises(aio.AioRpcError) as caught:
            await server.stub.Execute(pb.ExecuteRequest(spec=spec("out x")))
        error = rich(caught.value)
        assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert error.info.reason == "CAPACITY_EXHAUSTED"
        assert error.retry_delay >= 0.2
        # The older hint stays, and says the same.
        assert float(error.trailing["retry-after"]) == error.retry_delay
        server.sandbox.release()
        await holder
    finally:
        server.sandbox.release()
        await server.channel.close()
        await server.app.stop()


async def test_an_engine_outage_is_unavailable_before_and_mid_stream(running: Running) -> None:
    before = await refused(running, spec("raise unavailable"))
    assert before.code == grpc.StatusCode.UNAVAILABLE
    assert (before.info.reason, before.info.domain) == ("ENGINE_UNAVAILABLE", "codebeaker")
    call = running.stub.ExecuteStream(
        pb.ExecuteStreamRequest(spec=spec("out a\nraise unavailable"))
    )
    kinds = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for event in call:
            kinds.append(event.WhichOneof("event"))
    assert kinds == ["started", "output"]
    mid = rich(caught.value)
    assert mid.code == grpc.StatusCode.UNAVAILABLE
    assert mid.info.reason == "ENGINE_UNAVAILABLE"


async def test_a_crash_is_internal_with_nothing_but_its_reason(running: Running) -> None:
    with pytest.raises(aio.AioRpcError) as caught:
        await running.stub.Execute(pb.ExecuteRequest(spec=spec("raise crash")))
    error = rich(caught.value)
    assert error.code == grpc.StatusCode.INTERNAL
    assert [type(d) for d in error.details] == [error_details_pb2.ErrorInfo]
    assert (error.info.reason, dict(error.info.metadata)) == ("INTERNAL", {})
    everything = repr(caught.value.trailing_metadata()) + (caught.value.details() or "")
    assert "secret" not in everything


# A toy service for the errors ExecutionService does not raise (yet): each request's
# language names the domain error its one method raises, mid-stream on the bidi one.
SERVICE = "codebeaker.test.Raiser"
RAISED: dict[str, CodeBeakerError] = {
    "quota": QuotaExceeded(
        "tenant acme has 10 of 10 executions running", 2.5, "acme", "concurrent_executions"
    ),
    "unauthenticated": Unauthenticated("no credentials in the call"),
    "denied": PermissionDenied("tenant acme may not use gVisor", reason="RUNTIME_FORBIDDEN"),
    "missing": NotFound("sessions/s-1", "no session sessions/s-1"),
    "paused": FailedPrecondition("session sessions/s-1 is paused"),
    "sandbox": SandboxFailure("supervisor sent an oversized frame"),
}
Context = aio.ServicerContext[pb.Runtime, pb.Runtime]


async def raise_for(request: pb.Runtime, context: Context) -> pb.Runtime:
    raise RAISED[request.language]


async def chat(requests: AsyncIterator[pb.Runtime], context: Context) -> AsyncIterator[pb.Runtime]:
    async for request in requests:
        if request.language in RAISED:
            raise RAISED[request.language]
        yield pb.Runtime(language=f"echo {request.language}")


@pytest.fixture
async def toy() -> AsyncIterator[aio.Channel]:
    server = aio.server(interceptors=[ErrorInterceptor()], options=[("grpc.so_reuseport", 0)])
    parse, serialize = pb.Runtime.FromString, pb.Runtime.SerializeToString
    handlers = {
        "Raise": grpc.unary_unary_rpc_method_handler(raise_for, parse, serialize),
        "Chat": grpc.stream_stream_rpc_method_handler(chat, parse, serialize),
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    yield channel
    await channel.close()
    await server.stop(None)


async def raised(channel: aio.Channel, word: str) -> Rich:
    call: aio.UnaryUnaryMultiCallable[pb.Runtime, pb.Runtime] = channel.unary_unary(
        f"/{SERVICE}/Raise", pb.Runtime.SerializeToString, pb.Runtime.FromString
    )
    with pytest.raises(aio.AioRpcError) as caught:
        await call(pb.Runtime(language=word))
    return rich(caught.value)


async def test_a_tenants_quota_is_a_quota_failure_naming_the_tenant(toy: aio.Channel) -> None:
    error = await raised(toy, "quota")
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.message == "tenant acme has 10 of 10 executions running"
    assert error.info.reason == "QUOTA_EXCEEDED"
    assert dict(error.info.metadata) == {"tenant": "acme", "quota": "concurrent_executions"}
    (violation,) = error.one(error_details_pb2.QuotaFailure).violations
    assert (violation.subject, violation.quota_id) == ("acme", "concurrent_executions")
    assert violation.description == error.message
    assert error.retry_delay == 2.5
    assert error.trailing["retry-after"] == "2.5"


@pytest.mark.parametrize(
    ("word", "code", "reason"),
    [
        ("unauthenticated", grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        ("denied", grpc.StatusCode.PERMISSION_DENIED, "RUNTIME_FORBIDDEN"),
        ("missing", grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        ("paused", grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
        ("sandbox", grpc.StatusCode.INTERNAL, "SANDBOX_FAILURE"),
    ],
)
async def test_each_domain_error_has_its_code_and_reason(
    toy: aio.Channel, word: str, code: grpc.StatusCode, reason: str
) -> None:
    error = await raised(toy, word)
    assert error.code == code
    assert error.message == str(RAISED[word])
    assert (error.info.reason, error.info.domain) == (reason, "codebeaker")
    assert "retry-after" not in error.trailing


async def test_not_found_names_the_resource(toy: aio.Channel) -> None:
    error = await raised(toy, "missing")
    assert error.one(error_details_pb2.ResourceInfo).resource_name == "sessions/s-1"
    assert error.info.metadata["resource"] == "sessions/s-1"


async def test_details_arrive_mid_stream_after_the_responses_before_them(
    toy: aio.Channel,
) -> None:
    call: aio.StreamStreamMultiCallable[pb.Runtime, pb.Runtime] = toy.stream_stream(
        f"/{SERVICE}/Chat", pb.Runtime.SerializeToString, pb.Runtime.FromString
    )
    seen = []
    with pytest.raises(aio.AioRpcError) as caught:
        async for response in call(
            iter([pb.Runtime(language="one"), pb.Runtime(language="quota")])
        ):
            seen.append(response.language)
    assert seen == ["echo one"]
    error = rich(caught.value)
    assert error.info.reason == "QUOTA_EXCEEDED"
    assert error.retry_delay == 2.5


def test_readme_lists_every_reason() -> None:
    listed = set(re.findall(r"^\| `([A-Z_]+)` \|", README.read_text(), re.MULTILINE))
    assert {reason.value for reason in Reason} <= listed
