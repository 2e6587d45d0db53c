"""Tenants through the real server (over the fake sandbox): keys, mTLS subjects, quotas,
the audit file, the tenant in log lines, spans and metrics.

Each test starts an Application with its own tenants file and audit log. The
audit writer queues a line before the call's status leaves the server; for a
refused call the status is sent first, so a test reads the file only after a
later successful call of its own (whose line follows the refusal's).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import AsyncClient, UnauthenticatedError
from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.certs import Pki, make_pki
from tests.unit.conftest import status_of
from tests.unit.fake_sandbox import FakeSandbox

GRADER_KEY = "cbk_grader-secret"
TUTOR_KEY = "cbk_tutor-secret"


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@dataclass
class Tenanted:
    app: Application
    sandbox: FakeSandbox
    stub: pb_grpc.ExecutionServiceAsyncStub
    channel: aio.Channel
    audit: Path
    address: str

    async def audit_lines(self) -> list[dict[str, object]]:
        assert self.app.access.audit is not None
        await asyncio.to_thread(self.app.access.audit.flush)
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def metric(self, name: str, **labels: str) -> float:
        value = self.app.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def write_files(directory: Path, grader: str) -> tuple[Path, Path]:
    """The tenants file, and where the audit log goes."""
    directory.mkdir(parents=True, exist_ok=True)
    tenants = directory / "tenants.toml"
    tenants.write_text(
        f'[tenants.grader]\napi_key_sha256 = ["{digest(GRADER_KEY)}"]\n{grader}\n'
        f'[tenants.tutor]\napi_key_sha256 = ["{digest(TUTOR_KEY)}"]\n'
    )
    return tenants, directory / "audit.jsonl"


def fields(record: logging.LogRecord) -> dict[str, object]:
    found = record.__dict__["codebeaker_fields"]
    assert isinstance(found, dict)
    return found


@asynccontextmanager
async def tenanted(tmp_path: Path, grader: str = "", **settings: object) -> AsyncIterator[Tenanted]:
    """A server whose tenants are `grader` (with the extra TOML lines given) and `tutor`."""
    tenants, audit = write_files(tmp_path, grader)
    values = {"address": "127.0.0.1:0", "shutdown_grace": 1.0, **settings}
    config = ServerConfig().with_values(tenants=str(tenants), audit_log=str(audit), **values)
    sandbox = FakeSandbox()
    app = Application(config, sandbox, Catalog.load())
    port = await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Tenanted(
            app, sandbox, pb_grpc.ExecutionServiceStub(channel), channel, audit, f"127.0.0.1:{port}"
        )
    finally:
        sandbox.release()
        await channel.close()
        await app.stop()


def request(source: str) -> pb.ExecuteRequest:
    return pb.ExecuteRequest(spec=pb.ExecutionSpec(language="py", source=source.encode()))


async def refused(call: object) -> aio.AioRpcError:
    with pytest.raises(aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value


def trailer(error: aio.AioRpcError, key: str) -> str:
    values = [str(v) for k, v in error.trailing_metadata() or () if k == key]
    assert len(values) == 1, error.trailing_metadata()
    return values[0]


def quota_failure(error: aio.AioRpcError) -> error_details_pb2.QuotaFailure:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    for detail in status.details:
        failure = error_details_pb2.QuotaFailure()
        if detail.Unpack(failure):
            return failure
    raise AssertionError(f"no QuotaFailure in {status}")


@pytest.fixture
def captured(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def events(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if str(getattr(r, "codebeaker_event", "")).startswith(prefix)]


async def test_a_good_key_is_served_and_its_tenant_is_logged_audited_and_traced(
    tmp_path: Path, captured: pytest.LogCaptureFixture, spans: InMemorySpanExporter
) -> None:
    async with tenanted(tmp_path) as server:
        async with AsyncClient(server.address, token=GRADER_KEY, timeout=10) as client:
            result = await client.execute("python", "out hi")
        assert result.stdout == b"hi\n"
        (line,) = events(captured, "execution.")
        assert fields(line)["tenant"] == "grader"
        (entry,) = await server.audit_lines()
        assert entry["tenant"] == "grader"
        assert entry["method"] == "/codebeaker.v1.ExecutionService/Execute"
        assert entry["resource"] == "python"
        assert entry["code"] == "OK"
        assert entry["execution_id"] == result.execution_id
        assert str(entry["time"]).endswith("Z") and "127.0.0.1" in str(entry["peer"])
        (span,) = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
        assert span.attributes is not None and span.attributes["codebeaker.tenant"] == "grader"
        requests = "codebeaker_tenant_requests_total"
        assert server.metric(requests, tenant="grader", code="OK") == 1


async def test_no_key_and_a_bad_key_are_unauthenticated_and_audited(tmp_path: Path) -> None:
    async with tenanted(tmp_path) as server:
        wrong = [(), bearer("cbk_not-a-key"), (("authorization", f"Basic {GRADER_KEY}"),)]
        errors = [await refused(server.stub.Execute(request("out x"), metadata=m)) for m in wrong]
        assert [status_of(e) for e in errors] == [grpc.StatusCode.UNAUTHENTICATED] * 3
        assert "no credentials" in (errors[0].details() or "")
        assert "not valid" in (errors[1].details() or "")
        assert "Bearer" in (errors[2].details() or "")
        assert GRADER_KEY not in "".join(e.details() or "" for e in errors)
        stream = server.stub.ExecuteStream(pb.ExecuteStreamRequest(spec=request("out x").spec))
        assert status_of(await refused(stream.read())) is grpc.StatusCode.UNAUTHENTICATED
        assert server.sandbox.jobs == []  # refused before anything ran
        await server.stub.ListRuntimes(pb.ListRuntimesRequest(), metadata=bearer(TUTOR_KEY))
        entries = await server.audit_lines()
        assert [(e["tenant"], e["code"]) for e in entries] == [
            *[("", "UNAUTHENTICATED")] * 4,
            ("tutor", "OK"),
        ]
        requests = "codebeaker_tenant_requests_total"
        assert server.metric(requests, tenant="", code="UNAUTHENTICATED") == 4


async def test_a_request_is_authenticated_before_it_is_parsed(tmp_path: Path) -> None:
    async with tenanted(tmp_path) as server:
        path = "/codebeaker.v1.ExecutionService/Execute"
        execute: aio.UnaryUnaryMultiCallable[bytes, bytes] = server.channel.unary_unary(path)
        garbage = b"\xff\xff\xff"
        stranger = await refused(execute(garbage))
        assert status_of(stranger) is grpc.StatusCode.UNAUTHENTICATED
        tenant = await refused(execute(garbage, metadata=bearer(GRADER_KEY)))
        assert status_of(tenant) is grpc.StatusCode.INVALID_ARGUMENT
        assert "not a valid protobuf message" in (tenant.details() or "")


async def test_health_and_reflection_stay_open_without_a_key(tmp_path: Path) -> None:
    async with tenanted(tmp_path) as server:
        health = health_pb2_grpc.HealthStub(server.channel)
        answer = await health.Check(health_pb2.HealthCheckRequest())
        assert answer.status in (
            health_pb2.HealthCheckResponse.SERVING,
            health_pb2.HealthCheckResponse.NOT_SERVING,
        )
        call = reflection_pb2_grpc.ServerReflectionStub(server.channel).ServerReflectionInfo()
        await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
        response = await call.read()
        await call.done_writing()
        names = {service.name for service in response.list_services_response.service}
        assert "codebeaker.v1.ExecutionService" in names
        refusal = await refused(server.stub.ListRuntimes(pb.ListRuntimesRequest()))
        assert status_of(refusal) is grpc.StatusCode.UNAUTHENTICATED


async def test_over_the_request_rate_is_resource_exhausted_with_a_retry_hint(
    tmp_path: Path,
) -> None:
    # One token, refilled every 100 s: the second call of a burst cannot find one.
    async with tenanted(tmp_path, "requests_per_second = 0.01\nburst = 1") as server:
        listing = pb.ListRuntimesRequest()
        await server.stub.ListRuntimes(listing, metadata=bearer(GRADER_KEY))
        error = await refused(server.stub.ListRuntimes(listing, metadata=bearer(GRADER_KEY)))
        assert status_of(error) is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "request rate" in (error.details() or "")
        assert 99 < float(trailer(error, "retry-after")) <= 100
        (violation,) = quota_failure(error).violations
        assert (violation.subject, violation.quota_id) == ("grader", "requests_per_second")
        # Another tenant's bucket is its own.
        await server.stub.ListRuntimes(listing, metadata=bearer(TUTOR_KEY))
        rejections = "codebeaker_tenant_quota_rejections_total"
        assert server.metric(rejections, tenant="grader", quota="requests_per_second") == 1
        entries = await server.audit_lines()
        assert [e["code"] for e in entries] == ["OK", "RESOURCE_EXHAUSTED", "OK"]


async def test_a_second_execution_beyond_max_executions_is_refused_while_the_first_runs(
    tmp_path: Path, captured: pytest.LogCaptureFixture
) -> None:
    async with tenanted(tmp_path, "max_executions = 1") as server:
        key = bearer(GRADER_KEY)
        first = asyncio.ensure_future(server.stub.Execute(request("block\nout done"), metadata=key))
        await server.sandbox.blocked.wait()
        error = await refused(server.stub.Execute(request("out x"), metadata=key))
        assert status_of(error) is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_executions" in (error.details() or "")
        assert float(trailer(error, "retry-after")) > 0
        assert quota_failure(error).violations[0].quota_id == "max_executions"
        # The tenant's quota, not the server's: another tenant runs meanwhile.
        other = await server.stub.Execute(request("out y"), metadata=bearer(TUTOR_KEY))
        assert other.result.stdout == b"y\n"
        server.sandbox.release()
        assert (await first).result.stdout == b"done\n"
        again = await server.stub.Execute(request("out z"), metadata=key)  # the slot is back
        assert again.result.stdout == b"z\n"
        rejected = [fields(r)["tenant"] for r in events(captured, "execution.rejected")]
        assert rejected == ["grader"]


async def test_cpu_seconds_per_hour_refuses_executions_once_used_up(tmp_path: Path) -> None:
    # The fake sandbox charges 0.005 CPU seconds per execution.
    async with tenanted(tmp_path, "cpu_seconds_per_hour = 0.008") as server:
        key = bearer(GRADER_KEY)
        for _ in range(2):  # 0 and 0.005 used: under the quota when each starts
            await server.stub.Execute(request("out x"), metadata=key)
        error = await refused(server.stub.Execute(request("out x"), metadata=key))
        assert status_of(error) is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "CPU seconds" in (error.details() or "")
        assert 3540 <= float(trailer(error, "retry-after")) <= 3660
        assert quota_failure(error).violations[0].quota_id == "cpu_seconds_per_hour"
        assert len(server.sandbox.jobs) == 2
        await server.stub.ListRuntimes(pb.ListRuntimesRequest(), metadata=key)  # calls go on
        await server.stub.Execute(request("out x"), metadata=bearer(TUTOR_KEY))


async def test_an_execution_cancelled_before_its_verdict_is_still_charged(
    tmp_path: Path,
) -> None:
    async with tenanted(tmp_path, "cpu_seconds_per_hour = 1000") as server:
        call = server.stub.ExecuteStream(
            pb.ExecuteStreamRequest(spec=request("block").spec), metadata=bearer(GRADER_KEY)
        )
        first = await call.read()
        assert isinstance(first, pb.ExecuteStreamResponse) and first.started.execution_id
        call.cancel()
        await server.sandbox.idle.wait()
        tenancy = server.app.access.tenancy
        assert tenancy is not None
        usage = tenancy.usage(tenancy.tenants.by_name["grader"])
        assert usage.cpu_seconds_last_hour > 0
        assert usage.executing == 0


async def test_a_client_certificate_subject_identifies_its_tenant_over_mtls(
    tmp_path: Path, pki: Pki
) -> None:
    tls = {
        "tls_cert": str(pki.server.cert),
        "tls_key": str(pki.server.key),
        "tls_client_ca": str(pki.ca.cert),
    }
    # tests/certs.py names the client certificate's subject CN=client.
    async with tenanted(tmp_path / "a", 'subject = "CN=client"', **tls) as server:
        async with mtls_client(server.address, pki) as client:
            assert "python" in {runtime.language for runtime in await client.runtimes()}
        (entry,) = await server.audit_lines()
        assert (entry["tenant"], entry["code"]) == ("grader", "OK")
    async with tenanted(tmp_path / "b", 'subject = "CN=someone-else"', **tls) as server:
        async with mtls_client(server.address, pki) as client:
            with pytest.raises(UnauthenticatedError, match="CN=client") as caught:
                await client.runtimes()
        assert caught.value.reason == "UNAUTHENTICATED"


def mtls_client(address: str, pki: Pki) -> AsyncClient:
    return AsyncClient(
        address, timeout=10, ca=pki.ca.cert, cert=pki.client.cert, key=pki.client.key
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


async def test_an_open_server_warns_once_when_it_listens_beyond_loopback(
    tmp_path: Path, captured: pytest.LogCaptureFixture
) -> None:
    for address in ("127.0.0.1:0", "0.0.0.0:0"):  # bound, never called
        app = Application(
            ServerConfig().with_values(address=address, shutdown_grace=1.0),
            FakeSandbox(),
            Catalog.load(),
        )
        await app.start()
        await app.stop()
    (warning,) = events(captured, "server.open")
    assert warning.levelno == logging.WARNING
    assert fields(warning)["address"] == "0.0.0.0:0"
    captured.clear()
    async with tenanted(tmp_path, address="0.0.0.0:0"):
        pass
    assert events(captured, "server.open") == []


async def test_an_open_server_with_an_audit_log_audits_calls_without_a_tenant(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "audit.jsonl"
    config = ServerConfig().with_values(
        address="127.0.0.1:0", shutdown_grace=1.0, audit_log=str(audit)
    )
    app = Application(config, FakeSandbox(), Catalog.load())
    port = await app.start()
    try:
        async with aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ExecutionServiceStub(channel)
            call = stub.ExecuteStream(pb.ExecuteStreamRequest(spec=request("out a").spec))
            assert [event.WhichOneof("event") async for event in call][-1] == "result"
    finally:
        await app.stop()  # closing the log writes what was queued
    (entry,) = [json.loads(line) for line in audit.read_text().splitlines()]
    assert (entry["tenant"], entry["resource"], entry["code"]) == ("", "python", "OK")
    assert entry["method"] == "/codebeaker.v1.ExecutionService/ExecuteStream"
    counted = {"tenant": "", "code": "OK"}  # per-tenant series exist only with tenants
    assert (
        app.metrics.registry.get_sample_value("codebeaker_tenant_requests_total", counted) is None
    )
