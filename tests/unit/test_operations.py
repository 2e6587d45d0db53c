"""SubmitExecution and google.longrunning.Operations through the real server over the fake
sandbox: every state and transition, idempotent submit, paging and filters, errors, the
worker count changed at run time, hand-back on stop, direct calls beside a deep queue."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import grpc
import pytest
from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from google.rpc import error_details_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status  # type: ignore[import-untyped, unused-ignore]

from codebeaker.server.operations import control
from codebeaker.v1 import execution_pb2 as pb
from tests.redis_server import free_port, redis_server
from tests.unit.conftest import status_of
from tests.unit.fake_sandbox import FakeSandbox
from tests.unit.operations_helpers import metadata, queue_server, response

QUEUED = pb.EXECUTION_STATE_QUEUED
RUNNING = pb.EXECUTION_STATE_RUNNING


def field_of(error: BaseException) -> str:
    assert isinstance(error, aio.AioRpcError)
    status = rpc_status.from_call(error)
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            return str(bad.field_violations[0].field)
    raise AssertionError(f"no BadRequest in {error}")


async def test_a_submit_runs_to_succeeded_with_its_response(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q:
        submitted = await q.submit("out hello\nexit 3", request_id="job-1")
        assert submitted.name.startswith("operations/") and not submitted.done
        first = metadata(submitted)
        assert first.state == QUEUED and first.request_id == "job-1"
        assert first.language == "python" and first.create_time.seconds > 0
        done = await q.wait(submitted.name)
        assert done.done and done.WhichOneof("result") == "response"
        meta = metadata(done)
        assert meta.state == pb.EXECUTION_STATE_SUCCEEDED and meta.attempts == 1
        assert meta.end_time.ToNanoseconds() >= meta.start_time.ToNanoseconds() > 0
        result = response(done).result
        # The program's verdict is data: a non-zero exit is still a SUCCEEDED operation.
        assert result.stdout == b"hello\n" and result.exit_code == 3
        assert result.execution_id == meta.execution_id == f"{submitted.name[11:]}-1"
        assert (await q.get(submitted.name)).done


async def test_the_same_request_id_is_the_same_operation(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0) as q:
        first = await q.submit("out a", request_id="same")
        again = await q.submit("out b", request_id="same")
        other = await q.submit("out a", request_id="other")
        assert again.name == first.name and other.name != first.name
        assert len((await q.list()).operations) == 2


async def test_a_spec_is_refused_exactly_as_execute_refuses_it(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q:
        bad = [
            pb.ExecutionSpec(language="no-such-language", source=b"x"),
            pb.ExecutionSpec(language="python"),
            pb.ExecutionSpec(language="python", source=b"x", args=["a\0b"]),
        ]
        for spec in bad:
            with pytest.raises(aio.AioRpcError) as direct:
                await q.server.stub.Execute(pb.ExecuteRequest(spec=spec))
            with pytest.raises(aio.AioRpcError) as queued:
                await q.server.stub.SubmitExecution(pb.SubmitExecutionRequest(spec=spec))
            assert status_of(queued.value) == status_of(direct.value)
            assert status_of(queued.value) == grpc.StatusCode.INVALID_ARGUMENT
            assert field_of(queued.value) == field_of(direct.value)
        with pytest.raises(aio.AioRpcError) as long_id:
            await q.submit("out a", request_id="x" * 129)
        assert field_of(long_id.value) == "request_id"
        assert (await q.list()).operations == []


async def test_unknown_names_filters_and_tokens(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0) as q:
        with pytest.raises(aio.AioRpcError) as unknown:
            await q.get("operations/0123456789abcdef")
        assert status_of(unknown.value) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(aio.AioRpcError) as malformed:
            await q.get("sessions/x")
        assert field_of(malformed.value) == "name"
        for bad in ("state = DANCING", "done = maybe", "language = python", "state ="):
            with pytest.raises(aio.AioRpcError) as filtered:
                await q.list(filter=bad)
            assert field_of(filtered.value) == "filter", bad
        with pytest.raises(aio.AioRpcError) as token:
            await q.list(token="not-a-token")
        assert field_of(token.value) == "page_token"
        with pytest.raises(aio.AioRpcError) as size:
            await q.list(page_size=-1)
        assert field_of(size.value) == "page_size"
        for call in (q.operations.CancelOperation, q.operations.DeleteOperation):
            with pytest.raises(aio.AioRpcError) as missing:
                await call(operations_pb2.CancelOperationRequest(name="operations/nope"))
            assert status_of(missing.value) == grpc.StatusCode.NOT_FOUND


async def test_paging_newest_first_and_filters(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0) as q:
        names = [(await q.submit(f"out {n}")).name for n in range(7)]
        await q.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=names[0]))
        seen: list[str] = []
        token = ""
        while True:
            page = await q.list(page_size=3, token=token)
            assert len(page.operations) <= 3
            seen += [operation.name for operation in page.operations]
            token = page.next_page_token
            if not token:
                break
        assert seen == names[::-1]
        queued = await q.list(filter="state = QUEUED")
        assert [o.name for o in queued.operations] == names[:0:-1]
        done = await q.list(filter="done = true")
        assert [o.name for o in done.operations] == [names[0]]
        both = await q.list(filter="state = EXECUTION_STATE_CANCELLED OR done = false")
        assert len(both.operations) == 7
        none = await q.list(filter="done = true AND state != CANCELLED")
        assert list(none.operations) == []


async def test_cancel_a_queued_one_and_it_never_runs(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0) as q:
        operation = await q.submit("out never")
        await q.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=operation.name)
        )
        cancelled = await q.get(operation.name)
        assert cancelled.done and metadata(cancelled).state == pb.EXECUTION_STATE_CANCELLED
        assert cancelled.error.code == grpc.StatusCode.CANCELLED.value[0]
        control.write_workers(q.server.app.queue.state_dir, 2)
        assert q.server.app.queue.reload() == 2
        after = await q.submit("out later")
        assert (await q.wait(after.name)).done
        assert [job.files[0].content for job in q.server.sandbox.jobs] == [b"out later"]


async def test_cancel_a_running_one_stops_its_sandbox(tmp_path: Path) -> None:
    sandbox = FakeSandbox()
    async with queue_server(tmp_path, sandbox) as q:
        operation = await q.submit("out started\nblock")
        await sandbox.blocked.wait()
        running = await q.get(operation.name)
        assert metadata(running).state == RUNNING
        await q.operations.CancelOperation(
            operations_pb2.CancelOperationRequest(name=operation.name)
        )
        done = await q.wait(operation.name)
        assert metadata(done).state == pb.EXECUTION_STATE_CANCELLED
        assert done.error.code == grpc.StatusCode.CANCELLED.value[0]
        assert sandbox.torn_down == [metadata(done).execution_id] and sandbox.running == 0


async def test_a_service_failure_is_failed_with_its_status(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q:
        operation = await q.submit("raise unavailable")
        done = await q.wait(operation.name)
        assert metadata(done).state == pb.EXECUTION_STATE_FAILED
        assert done.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "unreachable" in done.error.message


async def test_delete_and_a_full_queue(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0, max_queued=2) as q:
        first = await q.submit("out 1")
        await q.submit("out 2")
        with pytest.raises(aio.AioRpcError) as full:
            await q.submit("out 3")
        assert status_of(full.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(full.value.trailing_metadata() or ()).get("retry-after") == "1"
        await q.operations.DeleteOperation(operations_pb2.DeleteOperationRequest(name=first.name))
        with pytest.raises(aio.AioRpcError) as gone:
            await q.get(first.name)
        assert status_of(gone.value) == grpc.StatusCode.NOT_FOUND
        await q.submit("out 3")  # room again


async def test_wait_returns_at_its_timeout(tmp_path: Path) -> None:
    async with queue_server(tmp_path, queue_workers=0) as q:
        operation = await q.submit("out x")
        waited = await q.wait(operation.name, seconds=0.05)
        assert not waited.done and metadata(waited).state == QUEUED


async def test_workers_resize_at_run_time_without_losing_work(tmp_path: Path) -> None:
    sandbox = FakeSandbox()
    async with queue_server(tmp_path, sandbox, queue_workers=1, max_concurrency=8) as q:
        queue = q.server.app.queue
        names = [(await q.submit("block")).name for _ in range(3)]
        await sandbox.blocked.wait()
        assert sandbox.running == 1
        control.write_workers(queue.state_dir, 3)
        queue.reload()
        await sandbox.blocked_at_least(3)
        control.write_workers(queue.state_dir, 0)  # down while all three run: they finish
        await queue.housekeeping()  # what the server does within a second of the change
        assert queue.pool.settings.workers == 0
        sandbox.release()
        for name in names:
            assert metadata(await q.wait(name)).state == pb.EXECUTION_STATE_SUCCEEDED
        later = await q.submit("out x")
        assert metadata(await q.wait(later.name, 0.3)).state == QUEUED


async def test_stop_hands_back_what_it_could_not_finish(tmp_path: Path) -> None:
    sandbox = FakeSandbox()
    async with queue_server(tmp_path, sandbox, queue_workers=1) as q:
        running = await q.submit("block")
        await sandbox.blocked.wait()
        waiting = await q.submit("out next")
        await q.server.app.queue.pool.stop(0.2)  # what SIGTERM does, within the grace
        for name in (running.name, waiting.name):
            meta = metadata(await q.get(name))
            assert meta.state == QUEUED and meta.attempts == 0, name
        assert sandbox.running == 0
    again = FakeSandbox()
    again.release()
    async with queue_server(tmp_path, again) as q:
        for name in (running.name, waiting.name):
            meta = metadata(await q.wait(name))
            assert meta.state == pb.EXECUTION_STATE_SUCCEEDED and meta.attempts == 1
        assert len(again.jobs) == 2


async def test_direct_calls_are_served_beside_a_deep_queue(tmp_path: Path) -> None:
    sandbox = FakeSandbox()
    async with queue_server(tmp_path, sandbox, max_concurrency=4, queue_share=0.5) as q:
        for _ in range(20):
            await q.submit("block")
        await sandbox.blocked.wait()
        await sandbox.blocked_at_least(2)  # the queue's share: 2 of 4 slots
        spec = pb.ExecutionSpec(language="python", source=b"out direct")
        for _ in range(3):
            direct = await q.server.stub.Execute(pb.ExecuteRequest(spec=spec))
            assert direct.result.stdout == b"direct\n"
        assert sandbox.running == 2


async def test_an_unusable_store_is_unavailable_and_not_ready(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "operations.sqlite3").mkdir()  # where the database file should be
    async with queue_server(state) as q:
        with pytest.raises(aio.AioRpcError) as refused:
            await q.submit("out x")
        assert status_of(refused.value) == grpc.StatusCode.UNAVAILABLE
        await q.server.app.queue.housekeeping()
        assert "operation store" in (q.server.app.queue.problem or "")
        health = health_pb2_grpc.HealthStub(q.server.channel)
        check = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING


async def test_a_password_in_the_redis_url_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "s3cret-pw-in-url"
    url = f"redis://bench:{password}@127.0.0.1:{free_port()}/3"  # nothing listens there
    async with queue_server(tmp_path / "state", queue=url) as q:
        with pytest.raises(aio.AioRpcError) as refused:
            await q.submit("out x")
        assert status_of(refused.value) == grpc.StatusCode.UNAVAILABLE
        assert "127.0.0.1" in str(refused.value.details())
        await q.server.app.queue.housekeeping()
        problem = q.server.app.queue.problem or ""
        assert "127.0.0.1" in problem
        assert "127.0.0.1" in caplog.text  # the warnings name where, not who
        shown = [str(refused.value.details()), problem, caplog.text]
        assert [text for text in shown if password in text or "bench:" in text] == []


async def test_a_redis_without_an_append_only_file_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server(appendonly=False) as redis:
        async with queue_server(tmp_path / "state", queue=redis.url) as q:
            await q.server.app.queue.housekeeping()  # what the server does every second
            assert q.server.app.queue.problem is None
            warned = [r for r in caplog.records if "append-only file" in r.getMessage()]
            assert len(warned) == 1 and "appendonly yes" in warned[0].getMessage()
            await q.server.app.queue.housekeeping()
            again = [r for r in caplog.records if "append-only file" in r.getMessage()]
            assert len(again) == 1  # once per server


async def test_reflection_lists_the_operations_service(tmp_path: Path) -> None:
    async with queue_server(tmp_path) as q:
        stub = reflection_pb2_grpc.ServerReflectionStub(q.server.channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for answer in stub.ServerReflectionInfo(iter([request])):
            names = {service.name for service in answer.list_services_response.service}
            break
        assert {"google.longrunning.Operations", "codebeaker.v1.ExecutionService"} <= names


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


async def test_tenants_see_only_their_own_and_the_queued_quota(tmp_path: Path) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f'[tenants.a]\napi_key_sha256 = ["{_digest("key-a")}"]\nmax_queued_operations = 1\n'
        f'[tenants.b]\napi_key_sha256 = ["{_digest("key-b")}"]\n'
    )
    async with queue_server(tmp_path / "state", queue_workers=0, tenants=str(tenants)) as q:
        a = (("authorization", "Bearer key-a"),)
        b = (("authorization", "Bearer key-b"),)
        spec = pb.ExecutionSpec(language="python", source=b"out a")
        request = pb.SubmitExecutionRequest(spec=spec, request_id="r")
        mine = await q.server.stub.SubmitExecution(request, metadata=a)
        assert (await q.server.stub.SubmitExecution(request, metadata=a)).name == mine.name
        with pytest.raises(aio.AioRpcError) as quota:
            await q.server.stub.SubmitExecution(pb.SubmitExecutionRequest(spec=spec), metadata=a)
        assert status_of(quota.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
        theirs = await q.server.stub.SubmitExecution(request, metadata=b)
        assert theirs.name != mine.name
        get = operations_pb2.GetOperationRequest(name=mine.name)
        with pytest.raises(aio.AioRpcError) as hidden:
            await q.operations.GetOperation(get, metadata=b)
        assert status_of(hidden.value) == grpc.StatusCode.NOT_FOUND
        with pytest.raises(aio.AioRpcError) as anonymous:
            await q.operations.GetOperation(get)
        assert status_of(anonymous.value) == grpc.StatusCode.UNAUTHENTICATED
        listed = await q.operations.ListOperations(
            operations_pb2.ListOperationsRequest(name="operations"), metadata=b
        )
        assert [o.name for o in listed.operations] == [theirs.name]


async def test_concurrent_submits_with_request_ids_stay_within_the_tenants_quota(
    tmp_path: Path,
) -> None:
    tenants = tmp_path / "tenants.toml"
    tenants.write_text(
        f'[tenants.a]\napi_key_sha256 = ["{_digest("key-a")}"]\nmax_queued_operations = 2\n'
    )
    async with queue_server(tmp_path / "state", queue_workers=0, tenants=str(tenants)) as q:
        a = (("authorization", "Bearer key-a"),)
        spec = pb.ExecutionSpec(language="python", source=b"out a")

        async def submit(n: int) -> grpc.StatusCode:
            request = pb.SubmitExecutionRequest(spec=spec, request_id=f"r-{n}")
            try:
                await q.server.stub.SubmitExecution(request, metadata=a)
            except aio.AioRpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        codes = await asyncio.gather(*(submit(n) for n in range(8)))
        assert sorted(codes, key=str) == sorted(
            [grpc.StatusCode.OK] * 2 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 6, key=str
        )
        listed = await q.operations.ListOperations(
            operations_pb2.ListOperationsRequest(name="operations"), metadata=a
        )
        assert len(listed.operations) == 2  # none stored then deleted, none over the quota
        with pytest.raises(aio.AioRpcError) as refused:
            await q.server.stub.SubmitExecution(
                pb.SubmitExecutionRequest(spec=spec, request_id="late"), metadata=a
            )
        info = _error_info(refused.value)
        assert (info.reason, dict(info.metadata)) == (
            "QUOTA_EXCEEDED", {"tenant": "a", "quota": "max_queued_operations"},
        )  # fmt: skip


def _error_info(error: BaseException) -> error_details_pb2.ErrorInfo:
    assert isinstance(error, aio.AioRpcError)
    for detail in rpc_status.from_call(error).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError(f"no ErrorInfo in {error}")
