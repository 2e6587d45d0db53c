"""SessionService over fake session sandboxes: life cycle, Execs, files, events,
expiry, loss and a restarted server (the real agent: tests/integration)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from grpc import aio
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from codebeaker.runtimes.catalog import Catalog
from codebeaker.server.app import Application
from codebeaker.server.config import ServerConfig
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import session_pb2 as spb
from codebeaker.v1 import session_pb2_grpc as spb_grpc
from tests.unit.conftest import status_of
from tests.unit.fake_agent import FakeSessionBackend
from tests.unit.fake_sandbox import FakeSandbox


@dataclass
class Served:
    app: Application
    backend: FakeSessionBackend
    channel: aio.Channel
    stub: spb_grpc.SessionServiceAsyncStub


async def serve(config: ServerConfig, backend: FakeSessionBackend) -> Served:
    app = Application(config, FakeSandbox(), Catalog.load(), backend)
    port = await app.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    return Served(app, backend, channel, spb_grpc.SessionServiceStub(channel))


async def shut(served: Served) -> None:
    await served.channel.close()
    await served.app.stop()


@pytest.fixture
def session_config(config: ServerConfig) -> ServerConfig:
    return config.with_values(session_spares=0, max_sessions=3)


@pytest.fixture
async def served(session_config: ServerConfig) -> AsyncIterator[Served]:
    served = await serve(session_config, FakeSessionBackend())
    yield served
    await shut(served)


async def next_of(call: Any) -> Any:
    """The stream's next message (a stream that ended fails the test)."""
    message = await call.read()
    assert message is not aio.EOF, "the stream ended"
    return message


async def create(
    stub: spb_grpc.SessionServiceAsyncStub, language: str = "python", **fields: object
) -> spb.Session:
    session = spb.Session(language=language, **fields)  # type: ignore[arg-type]
    return await stub.CreateSession(spb.CreateSessionRequest(session=session))


def start(name: str, *argv: str, **fields: object) -> spb.ExecRequest:
    command = spb.Command(argv=list(argv))
    return spb.ExecRequest(start=spb.ExecStart(session=name, command=command, **fields))  # type: ignore[arg-type]


async def run(
    stub: spb_grpc.SessionServiceAsyncStub, name: str, *argv: str
) -> tuple[bytes, pb.ExecutionResult]:
    out = b""
    result = pb.ExecutionResult()
    async for response in stub.Exec(iter([start(name, *argv, close_stdin=True)])):
        if response.HasField("output"):
            out += response.output.data
        if response.HasField("result"):
            result = response.result
    return out, result


async def test_a_session_is_created_ready_and_runs_commands(served: Served) -> None:
    session = await create(served.stub, labels={"team": "a"})
    assert session.state == spb.SESSION_STATE_READY
    assert session.name.startswith("sessions/")
    out, result = await run(served.stub, session.name, "echo", "hello", "there")
    assert out == b"hello there\n"
    assert result.status == pb.EXECUTION_STATUS_OK
    got = await served.stub.GetSession(spb.GetSessionRequest(name=session.name))
    assert got.exec_count == 1 and got.state == spb.SESSION_STATE_READY
    assert got.usage.memory_bytes == 10 << 20 and got.usage.cpu_time.seconds == 1
    _, failed = await run(served.stub, session.name, "exit", "3")
    assert failed.status == pb.EXECUTION_STATUS_RUNTIME_ERROR and failed.exit_code == 3


async def test_interactive_stdin_round_trips_and_signals_end_a_command(served: Served) -> None:
    session = await create(served.stub)
    requests: asyncio.Queue[spb.ExecRequest | None] = asyncio.Queue()

    async def feed() -> AsyncIterator[spb.ExecRequest]:
        while (item := await requests.get()) is not None:
            yield item

    requests.put_nowait(start(session.name, "upper"))
    call = served.stub.Exec(feed())
    first = await next_of(call)
    assert first.started.exec_id and first.sequence == 1
    requests.put_nowait(spb.ExecRequest(stdin=b"one\n"))
    assert (await next_of(call)).output.data == b"ONE\n"
    requests.put_nowait(spb.ExecRequest(stdin=b"two\n"))
    assert (await next_of(call)).output.data == b"TWO\n"
    requests.put_nowait(spb.ExecRequest(close_stdin=True))
    assert (await next_of(call)).result.status == pb.EXECUTION_STATUS_OK
    requests.put_nowait(None)

    requests = asyncio.Queue()
    requests.put_nowait(start(session.name, "sleep", "30"))
    call = served.stub.Exec(feed())
    await next_of(call)
    requests.put_nowait(spb.ExecRequest(signal=2))
    result = (await next_of(call)).result
    assert result.signal == 2 and result.status == pb.EXECUTION_STATUS_SIGNALED
    requests.put_nowait(None)


async def test_misplaced_exec_messages_and_cells_without_an_interpreter_are_invalid(
    served: Served,
) -> None:
    session = await create(served.stub)
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in served.stub.Exec(iter([spb.ExecRequest(stdin=b"x")])):
            pass
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    twice = [start(session.name, "sleep", "5"), start(session.name, "echo")]
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in served.stub.Exec(iter(twice)):
            pass
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    shell = await create(served.stub, language="bash")
    cell = spb.ExecRequest(start=spb.ExecStart(session=shell.name, code="1+1"))
    with pytest.raises(aio.AioRpcError) as caught:
        async for _ in served.stub.Exec(iter([cell])):
            pass
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT
    assert "no interpreter" in (caught.value.details() or "")


async def test_paused_sessions_refuse_execs_until_resumed(served: Served) -> None:
    session = await create(served.stub)
    paused = await served.stub.PauseSession(spb.PauseSessionRequest(name=session.name))
    assert paused.state == spb.SESSION_STATE_PAUSED
    with pytest.raises(aio.AioRpcError) as caught:
        await run(served.stub, session.name, "echo", "x")
    assert status_of(caught.value) == grpc.StatusCode.FAILED_PRECONDITION
    resumed = await served.stub.ResumeSession(spb.ResumeSessionRequest(name=session.name))
    assert resumed.state == spb.SESSION_STATE_READY
    assert (await run(served.stub, session.name, "echo", "back"))[0] == b"back\n"


async def test_unknown_and_deleted_sessions_are_not_found(served: Served) -> None:
    for name in ("sessions/nosuchsession", "sessions/BAD!"):
        with pytest.raises(aio.AioRpcError) as caught:
            await served.stub.GetSession(spb.GetSessionRequest(name=name))
        assert status_of(caught.value) == grpc.StatusCode.NOT_FOUND
    session = await create(served.stub)
    await served.stub.DeleteSession(spb.DeleteSessionRequest(name=session.name))
    with pytest.raises(aio.AioRpcError) as caught:
        await served.stub.GetSession(spb.GetSessionRequest(name=session.name))
    assert status_of(caught.value) == grpc.StatusCode.NOT_FOUND
    assert not served.backend.agents


async def test_max_sessions_is_resource_exhausted_with_a_retry_hint(served: Served) -> None:
    for _ in range(3):
        await create(served.stub)
    with pytest.raises(aio.AioRpcError) as caught:
        await create(served.stub)
    assert status_of(caught.value) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(caught.value.trailing_metadata() or ()).get("retry-after")


async def test_files_are_written_read_and_listed(served: Served) -> None:
    session = await create(served.stub)
    files = [pb.File(path="a.txt", content=b"A"), pb.File(path="d/b.txt", content=b"BB")]
    written = await served.stub.WriteFiles(spb.WriteFilesRequest(name=session.name, files=files))
    assert written.files_written == 2 and written.bytes_written == 3
    read = await served.stub.ReadFiles(
        spb.ReadFilesRequest(name=session.name, paths=["a.txt", "gone.txt"])
    )
    assert [(f.path, f.status, f.content) for f in read.files] == [
        ("a.txt", pb.OUTPUT_FILE_STATUS_OK, b"A"),
        ("gone.txt", pb.OUTPUT_FILE_STATUS_MISSING, b""),
    ]
    listed = await served.stub.ListFiles(spb.ListFilesRequest(name=session.name))
    assert [(e.name, e.size) for e in listed.entries] == [("a.txt", 1), ("d/b.txt", 2)]
    bad = [pb.File(path="../escape", content=b"")]
    with pytest.raises(aio.AioRpcError) as caught:
        await served.stub.WriteFiles(spb.WriteFilesRequest(name=session.name, files=bad))
    assert status_of(caught.value) == grpc.StatusCode.INVALID_ARGUMENT


async def test_a_vanished_container_makes_the_session_failed_and_lost(served: Served) -> None:
    session = await create(served.stub)
    watch = served.stub.WatchSessions(spb.WatchSessionsRequest(name=session.name, no_usage=True))
    await asyncio.sleep(0.1)
    sandbox_id = next(iter(served.backend.agents))
    served.backend.vanish(sandbox_id)
    async with asyncio.timeout(1.0):
        event = await next_of(watch)
    assert event.type == spb.SESSION_EVENT_TYPE_LOST
    assert event.session.state == spb.SESSION_STATE_FAILED
    got = await served.stub.GetSession(spb.GetSessionRequest(name=session.name))
    assert got.state == spb.SESSION_STATE_FAILED and "outside" in got.state_reason
    watch.cancel()


async def test_idle_sessions_are_terminated_saying_why(served: Served) -> None:
    idle = Duration(seconds=1)
    session = await create(served.stub, idle_timeout=idle)
    await asyncio.sleep(2.5)
    got = await served.stub.GetSession(spb.GetSessionRequest(name=session.name))
    assert got.state == spb.SESSION_STATE_TERMINATED and "idle" in got.state_reason
    assert not served.backend.agents


async def test_a_restarted_server_finds_its_sessions_and_uses_them(
    session_config: ServerConfig,
) -> None:
    backend = FakeSessionBackend()
    first = await serve(session_config, backend)
    session = await create(first.stub)
    await first.stub.WriteFiles(
        spb.WriteFilesRequest(name=session.name, files=[pb.File(path="kept", content=b"yes")])
    )
    await run(first.stub, session.name, "echo", "kept-exec")
    await shut(first)
    assert backend.agents, "the session's sandbox outlives the server"
    second = await serve(session_config, backend)
    try:
        got = await second.stub.GetSession(spb.GetSessionRequest(name=session.name))
        assert got.state == spb.SESSION_STATE_READY
        read = await second.stub.ReadFiles(spb.ReadFilesRequest(name=session.name, paths=["kept"]))
        assert read.files[0].content == b"yes"
        assert (await run(second.stub, session.name, "echo", "again"))[0] == b"again\n"
        # The Exec history outlives the server (the results, not the output).
        execs = (await second.stub.ListExecs(spb.ListExecsRequest(name=session.name))).execs
        assert [list(e.argv) for e in execs] == [["echo", "kept-exec"], ["echo", "again"]]
        assert (
            execs[0].state == spb.EXEC_STATE_DONE
            and execs[0].result.status == pb.EXECUTION_STATUS_OK
        )
        replay = second.stub.AttachExec(
            spb.AttachExecRequest(name=session.name, exec_id=execs[0].exec_id)
        )
        assert (await next_of(replay)).result.status == pb.EXECUTION_STATUS_OK
    finally:
        await shut(second)


async def test_detached_execs_outlive_their_caller_and_can_be_attached(served: Served) -> None:
    session = await create(served.stub)
    call = served.stub.Exec(iter([start(session.name, "cat", detached=True)]))
    exec_id = (await next_of(call)).started.exec_id
    call.cancel()
    await asyncio.sleep(0.2)
    execs = await served.stub.ListExecs(spb.ListExecsRequest(name=session.name))
    assert [(e.exec_id, e.state) for e in execs.execs] == [(exec_id, spb.EXEC_STATE_RUNNING)]
    attached = served.stub.AttachExec(spb.AttachExecRequest(name=session.name, exec_id=exec_id))
    assert (await next_of(attached)).started.exec_id == exec_id
    attached.cancel()

    killed = served.stub.Exec(iter([start(session.name, "sleep", "30")]))
    other = (await next_of(killed)).started.exec_id
    killed.cancel()
    await asyncio.sleep(0.2)
    execs = await served.stub.ListExecs(spb.ListExecsRequest(name=session.name))
    states = {e.exec_id: e for e in execs.execs}
    assert states[other].state == spb.EXEC_STATE_DONE and states[other].result.signal == 9


async def test_sessions_list_in_pages_filtered_by_labels(served: Served) -> None:
    names = [(await create(served.stub, labels={"n": str(i % 2)})).name for i in range(3)]
    page = await served.stub.ListSessions(spb.ListSessionsRequest(page_size=2))
    assert [s.name for s in page.sessions] == names[:2] and page.next_page_token
    rest = await served.stub.ListSessions(
        spb.ListSessionsRequest(page_size=2, page_token=page.next_page_token)
    )
    assert [s.name for s in rest.sessions] == names[2:] and not rest.next_page_token
    odd = await served.stub.ListSessions(spb.ListSessionsRequest(labels={"n": "1"}))
    assert [s.name for s in odd.sessions] == [names[1]]


async def test_the_life_cycle_and_every_exec_are_traced(
    served: Served, spans: InMemorySpanExporter
) -> None:
    session = await create(served.stub)
    await run(served.stub, session.name, "echo", "traced")
    await served.stub.PauseSession(spb.PauseSessionRequest(name=session.name))
    await served.stub.ResumeSession(spb.ResumeSessionRequest(name=session.name))
    await served.stub.DeleteSession(spb.DeleteSessionRequest(name=session.name))
    names = [span.name for span in spans.get_finished_spans()]
    for expected in (
        "session.create",
        "session.launch",
        "session.hello",
        "session.exec",
        "session.pause",
        "session.resume",
        "session.delete",
    ):
        assert expected in names, names
    exec_span = next(s for s in spans.get_finished_spans() if s.name == "session.exec")
    assert exec_span.attributes is not None
    assert exec_span.attributes["codebeaker.verdict"] == "ok"
    assert exec_span.attributes["codebeaker.argv0"] == "echo"
