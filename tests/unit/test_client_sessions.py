"""The SDK's sessions (`create_session`, `Session`, its Execs, files and events) against a
fake SessionService over real gRPC (a grpc.aio server of its own; see fake_sessions).

The fake's Execs really stream both ways, so these prove the SDK sends stdin as it is
written and hands output over as it arrives, not only that the messages are right.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from datetime import UTC, datetime

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from codebeaker.client import (
    AsyncClient,
    AsyncSession,
    Client,
    ExecDisplay,
    ExecFinished,
    ExecOutput,
    ExecResult,
    ExecStarted,
    ExecState,
    ExecutionStatus,
    FailedPreconditionError,
    FieldViolation,
    FileEntry,
    FilesWritten,
    FileType,
    InvalidArgumentError,
    Limits,
    NotFoundError,
    OutputFileStatus,
    OutputStream,
    Session,
    SessionEventType,
    SessionState,
    UnavailableError,
)
from codebeaker.v1 import session_pb2 as spb
from tests.unit.fake_sessions import PNG, FakeSessions, refused, serve_sessions


@pytest.fixture
def served() -> Iterator[tuple[FakeSessions, str]]:
    with serve_sessions() as pair:
        yield pair


@pytest.fixture
def fake(served: tuple[FakeSessions, str]) -> FakeSessions:
    return served[0]


@pytest.fixture
def client(served: tuple[FakeSessions, str]) -> Iterator[Client]:
    with Client(served[1], timeout=10) as client:
        yield client


@pytest.fixture
def session(client: Client) -> Session:
    return client.create_session("python")


# -- creating, finding, listing ------------------------------------------------------


def test_create_session_sends_every_setting(fake: FakeSessions, client: Client) -> None:
    session = client.create_session(
        "python",
        version="3.11",
        limits=Limits(memory_bytes=256 << 20, max_processes=32, wall_time=5, cpu_time=2),
        env={"LANG": "C.UTF-8"},
        labels={"team": "judge"},
        idle_timeout=600,
        lifetime=3600.5,
        disk_bytes=64 << 20,
        cpus=1.5,
        session_id="mine-1",
        request_id="create-1",
    )
    (request,) = fake.creates
    assert request.session_id == "mine-1" and request.request_id == "create-1"
    sent = request.session
    assert (sent.language, sent.version) == ("python", "3.11")
    assert sent.limits.memory_bytes == 256 << 20 and sent.limits.max_processes == 32
    assert sent.limits.wall_time == Duration(seconds=5)
    assert sent.idle_timeout == Duration(seconds=600)
    assert sent.lifetime == Duration(seconds=3600, nanos=500_000_000)
    assert (sent.disk_bytes, sent.cpus) == (64 << 20, 1.5)
    assert dict(sent.env) == {"LANG": "C.UTF-8"} and dict(sent.labels) == {"team": "judge"}

    assert (session.name, session.id) == ("sessions/mine-1", "mine-1")
    info = session.info
    assert info.state is SessionState.READY and not info.state.ended
    assert info.limits == Limits(memory_bytes=256 << 20, max_processes=32, wall_time=5, cpu_time=2)
    assert (info.idle_timeout, info.lifetime, info.cpus) == (600, 3600.5, 1.5)
    assert info.labels == {"team": "judge"} and info.env == {"LANG": "C.UTF-8"}
    assert info.create_time is not None and info.create_time.tzinfo is UTC
    assert info.expire_time is not None and info.expire_time > info.create_time
    assert info.usage is not None and info.usage.memory_bytes == 1 << 20
    assert info.last_activity_time is None
    with pytest.raises(TypeError):
        info.labels["team"] = "other"  # type: ignore[index]


def test_a_retried_create_with_the_same_request_id_is_the_same_session(client: Client) -> None:
    first = client.create_session("python", request_id="same")
    again = client.create_session("python", request_id="same")
    assert again.name == first.name


def test_a_refused_create_names_the_field(fake: FakeSessions, client: Client) -> None:
    with pytest.raises(InvalidArgumentError) as refused_:
        client.create_session("cobol")
    assert refused_.value.reason == "LANGUAGE_UNKNOWN"
    assert refused_.value.field_violations == [
        FieldViolation("session.language", "unknown language 'cobol'")
    ]


@pytest.mark.parametrize(
    "settings",
    [{"idle_timeout": -1}, {"lifetime": float("inf")}, {"disk_bytes": -5}, {"cpus": -0.5}],
)
def test_impossible_settings_are_refused_before_any_call(
    fake: FakeSessions, client: Client, settings: dict[str, float]
) -> None:
    with pytest.raises(ValueError):
        client.create_session("python", **settings)  # type: ignore[arg-type]
    assert fake.creates == []


def test_get_session_takes_the_name_or_the_bare_id(fake: FakeSessions, client: Client) -> None:
    name = fake.add("found-it")
    assert client.get_session(name).name == name
    assert client.get_session("found-it").name == name
    with pytest.raises(ValueError):
        client.get_session("sessions/a/b")


def test_an_unknown_session_is_not_found_with_the_servers_details(client: Client) -> None:
    with pytest.raises(NotFoundError) as missing:
        client.get_session("nope")
    assert missing.value.code == "NOT_FOUND"
    assert missing.value.reason == "NOT_FOUND"
    assert missing.value.metadata == {"resource": "sessions/nope"}


def test_list_sessions_follows_every_page(fake: FakeSessions, client: Client) -> None:
    names = [fake.add(f"many-{n}", team="a") for n in range(5)]
    fake.add("other", team="b")
    fake.add("gone", state="TERMINATED", team="a")
    listed = list(client.list_sessions(labels={"team": "a"}, page_size=2))
    assert [info.name for info in listed] == names  # live ones only, by default
    assert [r.page_token for r in fake.lists] == ["", "2", "4"]
    assert all(r.page_size == 2 and dict(r.labels) == {"team": "a"} for r in fake.lists)


def test_list_sessions_filters_by_state(fake: FakeSessions, client: Client) -> None:
    fake.add("paused-1", state="PAUSED")
    fake.add("ready-1")
    listed = list(client.list_sessions(states=["paused", SessionState.TERMINATED]))
    assert [info.name for info in listed] == ["sessions/paused-1"]
    assert list(fake.lists[0].states) == [spb.SESSION_STATE_PAUSED, spb.SESSION_STATE_TERMINATED]
    with pytest.raises(ValueError, match="unknown session state"):
        client.list_sessions(states=["sleepy"])
    with pytest.raises(ValueError):
        client.list_sessions(page_size=0)


# -- Execs --------------------------------------------------------------------------


def test_exec_returns_the_verdict_and_the_collected_output(
    fake: FakeSessions, session: Session
) -> None:
    result = session.exec(
        ["env"],
        env={"A": "1"},
        cwd="work",
        limits=Limits(wall_time=3, max_output_bytes=1024),
        stdin="ignored",
    )
    assert isinstance(result, ExecResult)
    assert result.status is ExecutionStatus.OK and result.ok
    assert result.exec_id == "e1"
    assert result.stdout == b"A=1\ncwd=work\n" and result.stderr == b""
    (start,) = fake.starts
    assert start.session == session.name and list(start.command.argv) == ["env"]
    assert start.stdin == b"ignored" and start.close_stdin  # stdin is all there is
    assert start.limits.wall_time == Duration(seconds=3) and start.limits.max_output_bytes == 1024
    assert not start.detached


def test_a_failing_command_is_a_verdict_not_an_error(session: Session) -> None:
    result = session.exec(["fail"])
    assert result.status is ExecutionStatus.RUNTIME_ERROR and not result.ok
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"", b"boom\n")


def test_a_str_command_runs_through_the_shell(fake: FakeSessions, session: Session) -> None:
    assert session.exec("echo via the shell").stdout == b"via the shell\n"
    assert list(fake.starts[0].command.argv) == ["sh", "-c", "echo via the shell"]
    with pytest.raises(ValueError):
        session.exec([])
    with pytest.raises(TypeError):
        session.exec(b"echo")  # type: ignore[arg-type]


def test_exec_stream_yields_numbered_events_in_order(session: Session) -> None:
    with session.exec_stream(["display"]) as stream:
        events = list(stream)
    assert events[0] == ExecStarted("e1", session.name, 1)
    assert events[1:3] == [ExecDisplay("text/plain", b"42", 2), ExecDisplay("image/png", PNG, 3)]
    finished = events[3]
    assert isinstance(finished, ExecFinished) and finished.sequence == 4
    assert finished.result.status is ExecutionStatus.OK
    assert stream.exec_id == "e1" and stream.result == finished.result


def test_interactive_sends_stdin_as_it_is_written(fake: FakeSessions, session: Session) -> None:
    with session.interactive(["upper"], stdin="first\n") as shell:
        assert isinstance(next(shell), ExecStarted)
        assert next(shell) == ExecOutput(OutputStream.STDOUT, b"FIRST\n", 2)
        # The answer to each line arrives while stdin is still open.
        shell.write("second\n")
        assert next(shell) == ExecOutput(OutputStream.STDOUT, b"SECOND\n", 3)
        shell.write(b"third\n")
        shell.close_stdin()
        result = shell.result()
    assert result.status is ExecutionStatus.OK
    assert result.stdout == b"FIRST\nSECOND\nTHIRD\n"  # everything the Exec wrote
    assert shell.exec_id == result.exec_id == "e1"
    assert not fake.starts[0].close_stdin
    with pytest.raises(ValueError, match="over"):
        shell.write("too late")


def test_a_signal_ends_the_command_signaled(session: Session) -> None:
    with session.interactive(["sleep"]) as sleeper:
        assert [type(next(sleeper)), next(sleeper)] == [
            ExecStarted,
            ExecOutput(OutputStream.STDOUT, b"tick\n", 2),
        ]
        sleeper.signal(signal.SIGINT)
        result = sleeper.result()
    assert result.status is ExecutionStatus.SIGNALED and result.signal == 2
    with pytest.raises(ValueError):
        session.interactive(["sleep"]).signal(0)


def test_leaving_an_exec_early_stops_it_unless_detached(
    fake: FakeSessions, session: Session
) -> None:
    with session.interactive(["sleep"]) as sleeper:
        next(sleeper)
    fake.wait_for(lambda: fake.stopped == ["e1"])
    with session.exec_stream(["sleep"], detached=True) as stream:
        assert next(stream).exec_id == "e2"  # type: ignore[union-attr]
    (stopped, running) = session.list_execs()
    assert stopped.state is ExecState.DONE and stopped.result is not None
    assert stopped.result.status is ExecutionStatus.SIGNALED and stopped.result.signal == 9
    assert running.exec_id == "e2" and running.state is ExecState.RUNNING and running.detached
    assert running.argv == ("sleep",) and running.result is None
    assert fake.stopped == ["e1"]


def test_attach_replays_a_detached_exec_then_follows_it(
    fake: FakeSessions, session: Session
) -> None:
    with session.exec_stream(["sleep"], detached=True) as stream:
        exec_id = next(stream).exec_id  # type: ignore[union-attr]
        next(stream)  # "tick": written before we leave
    with session.attach(exec_id) as followed:
        assert [next(followed), next(followed)] == [
            ExecStarted(exec_id, session.name, 1),
            ExecOutput(OutputStream.STDOUT, b"tick\n", 2),
        ]
        fake.release(session.name, exec_id)  # it goes on, and ends, live
        rest = list(followed)
    assert rest[0] == ExecOutput(OutputStream.STDOUT, b"done\n", 3)
    assert isinstance(rest[1], ExecFinished)
    assert rest[1].result.stdout == b"tick\ndone\n" and rest[1].result.exec_id == exec_id

    later = session.attach(exec_id, from_sequence=3)
    assert [type(e) for e in later] == [ExecOutput, ExecFinished]
    assert later.result is not None and later.result.stdout == b"done\n"
    with pytest.raises(NotFoundError):
        list(session.attach("e404"))
    with pytest.raises(ValueError):
        session.attach(exec_id, from_sequence=-1)


def test_exec_into_a_paused_session_fails_its_precondition(session: Session) -> None:
    assert session.pause().info.state is SessionState.PAUSED
    with pytest.raises(FailedPreconditionError):
        session.exec(["echo"])
    assert session.resume().info.state is SessionState.READY
    assert session.exec(["echo", "back"]).stdout == b"back\n"
    with pytest.raises(FailedPreconditionError):
        session.resume()


def test_exec_into_an_unknown_session_is_not_found(client: Client, fake: FakeSessions) -> None:
    gone = client.get_session(fake.add("short-lived"))
    gone.delete()
    with pytest.raises(NotFoundError) as missing:
        gone.exec(["echo"])
    assert missing.value.metadata == {"resource": "sessions/short-lived"}
    with pytest.raises(NotFoundError):
        gone.refresh()


def test_a_failure_mid_exec_is_an_sdk_error(fake: FakeSessions, session: Session) -> None:
    fake.refusals["Exec"] = refused(grpc.StatusCode.UNAVAILABLE, "host lost", "HOST_LOST")
    with pytest.raises(UnavailableError) as lost:
        session.exec(["echo"])
    assert lost.value.reason == "HOST_LOST"


# -- files, state, the handle's life ---------------------------------------------------


def test_files_go_in_and_come_back(fake: FakeSessions, session: Session) -> None:
    written = session.write_files({"src/main.py": "print(1)\n", "data.bin": b"\x00\xff"}, 0o755)
    assert written == FilesWritten(files=2, total_bytes=11)
    assert fake.files[session.name]["src/main.py"] == (b"print(1)\n", 0o755)
    session.exec(["write", "out.txt", "made", "here"])
    (out, missing) = session.read_files(["out.txt", "none.txt"])
    assert (out.path, out.status, out.content, out.ok) == (
        "out.txt",
        OutputFileStatus.OK,
        b"made here",
        True,
    )
    assert missing.status is OutputFileStatus.MISSING
    assert [f.path for f in session.read_files("*.txt")] == ["out.txt"]  # a glob, not chars

    top = session.list_files()
    assert [(e.name, e.type) for e in top] == [
        ("data.bin", FileType.REGULAR),
        ("out.txt", FileType.REGULAR),
        ("src", FileType.DIRECTORY),
    ]
    assert not top.truncated
    (main,) = session.list_files("src")
    assert main == FileEntry(
        "main.py", FileType.REGULAR, 9, 0o755, datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    )


def test_a_refused_path_names_the_file(session: Session) -> None:
    with pytest.raises(InvalidArgumentError) as refused_:
        session.write_files({"ok.txt": "", "../escape": "x"})
    assert refused_.value.field_violations[0].field == "files[1].path"
    with pytest.raises(ValueError):
        session.write_files({"a": "b"}, mode=0o10000)


def test_refresh_reads_the_session_again(fake: FakeSessions, session: Session) -> None:
    session.exec(["echo"])
    assert session.info.exec_count == 0  # what the server said at create
    assert session.refresh().info.exec_count == 1


def test_leaving_the_block_deletes_the_session(fake: FakeSessions, client: Client) -> None:
    with client.create_session("python") as session:
        assert session.name in fake.sessions
    assert session.name not in fake.sessions

    with client.create_session("python") as session:
        session.delete()  # gone already: leaving the block is still fine
    with (
        pytest.raises(RuntimeError, match="mine") as raised,
        client.create_session("python") as session,
    ):
        raise RuntimeError("mine")
    assert session.name not in fake.sessions
    assert not getattr(raised.value, "__notes__", None)


def test_a_failed_delete_does_not_hide_the_blocks_own_error(
    fake: FakeSessions, client: Client
) -> None:
    with (
        pytest.raises(RuntimeError, match="mine") as raised,
        client.create_session("python") as session,
    ):
        fake.refusals["DeleteSession"] = refused(
            grpc.StatusCode.UNAVAILABLE, "engine down", "ENGINE_UNAVAILABLE"
        )
        raise RuntimeError("mine")
    assert raised.value.__notes__ == [
        f"and deleting {session.name} failed: UNAVAILABLE: engine down"
    ]
    fake.refusals["DeleteSession"] = refused(grpc.StatusCode.UNAVAILABLE, "down", "X")
    with pytest.raises(UnavailableError), client.create_session("python"):
        pass


def test_watch_sessions_reports_what_happens(fake: FakeSessions, client: Client) -> None:
    session = client.create_session("python", labels={"w": "1"})
    with client.watch_sessions(name=session.id, usage_interval=2) as watch:
        usage = next(watch)  # sent first: the watch is in place once it is here
        assert usage.type is SessionEventType.USAGE and usage.session.usage is not None
        session.pause()
        session.resume()
        session.delete()
        changes = [next(watch) for _ in range(3)]
    assert [(e.type, e.previous_state, e.session.state) for e in changes] == [
        (SessionEventType.STATE_CHANGED, SessionState.READY, SessionState.PAUSED),
        (SessionEventType.STATE_CHANGED, SessionState.PAUSED, SessionState.READY),
        (SessionEventType.DELETED, None, SessionState.TERMINATED),
    ]
    assert changes[0].reason == "paused" and changes[2].time is not None
    (request,) = fake.watches
    assert request.name == session.name and request.usage_interval == Duration(seconds=2)
    assert not request.no_usage
    assert list(watch) == []  # closed


def test_watch_without_usage_sees_new_sessions(fake: FakeSessions, client: Client) -> None:
    with client.watch_sessions(labels={"team": "x"}, usage=False) as watch:
        fake.wait_for(lambda: len(fake.watchers) == 1)
        client.create_session("python", labels={"team": "y"})
        made = client.create_session("python", labels={"team": "x"})
        created = next(watch)
    assert (created.type, created.session.name) == (SessionEventType.CREATED, made.name)
    assert fake.watches[0].no_usage and dict(fake.watches[0].labels) == {"team": "x"}


def test_session_calls_are_traced_and_carry_the_callers_metadata(
    fake: FakeSessions, served: tuple[FakeSessions, str], spans: InMemorySpanExporter
) -> None:
    with Client(served[1], token="s3cret") as client:
        session = client.create_session("python")
        session.exec(["fail"])
    create, exec_ = [s for s in spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert create.name == "codebeaker.v1.SessionService/CreateSession"
    assert exec_.name == "codebeaker.v1.SessionService/Exec"
    assert exec_.attributes is not None
    assert exec_.attributes["codebeaker.session"] == session.name
    assert exec_.attributes["codebeaker.exec_id"] == "e1"
    assert exec_.attributes["codebeaker.exit_code"] == 3
    assert all(m["authorization"] == "Bearer s3cret" for m in fake.metadata)
    assert exec_.context is not None
    assert f"{exec_.context.span_id:016x}" in fake.metadata[1]["traceparent"]


# -- asyncio ------------------------------------------------------------------------


async def test_the_async_client_has_the_same_sessions(served: tuple[FakeSessions, str]) -> None:
    fake, address = served
    async with AsyncClient(address, timeout=10) as client:
        async with await client.create_session("python", labels={"a": "1"}) as session:
            assert isinstance(session, AsyncSession)
            assert (await client.get_session(session.id)).name == session.name
            result = await session.exec("echo hi")
            assert (result.stdout, result.exec_id) == (b"hi\n", "e1")
            events = [e async for e in session.exec_stream(["display"])]
            assert [type(e) for e in events] == [
                ExecStarted,
                ExecDisplay,
                ExecDisplay,
                ExecFinished,
            ]

            await session.write_files({"f.txt": "x"})
            assert [f.content for f in await session.read_files(["f.txt"])] == [b"x"]
            assert [e.name for e in await session.list_files()] == ["f.txt"]
            assert [e.exec_id for e in await session.list_execs()] == ["e1", "e2"]
            assert (await session.pause()).info.state is SessionState.PAUSED
            with pytest.raises(FailedPreconditionError):
                await session.exec(["echo"])
            assert (await session.resume()).info.state is SessionState.READY
            assert (await session.refresh()).info.exec_count == 2
        assert session.name not in fake.sessions
        with pytest.raises(NotFoundError):
            await session.exec(["echo"])


async def test_async_interactive_streams_both_ways(served: tuple[FakeSessions, str]) -> None:
    fake, address = served
    async with AsyncClient(address, timeout=10) as client:
        session = await client.create_session("python")
        async with session.interactive(["upper"]) as shell:
            await shell.write("one\n")
            assert isinstance(await anext(shell), ExecStarted)
            assert await anext(shell) == ExecOutput(OutputStream.STDOUT, b"ONE\n", 2)
            await shell.write(b"two\n")
            await shell.close_stdin()
            result = await shell.result()
        assert result.stdout == b"ONE\nTWO\n" and result.ok

        async with session.interactive(["sleep"]) as sleeper:
            await anext(sleeper)
            await sleeper.signal(signal.SIGTERM)
            assert (await sleeper.result()).signal == signal.SIGTERM

        async with session.exec_stream(["sleep"], detached=True) as stream:
            started = await anext(stream)
        assert isinstance(started, ExecStarted)
        attached = session.attach(started.exec_id, from_sequence=2)
        assert await anext(attached) == ExecOutput(OutputStream.STDOUT, b"tick\n", 2)
        await asyncio.to_thread(fake.release, session.name, started.exec_id)
        assert (await attached.drain()).stdout == b"tick\ndone\n"


async def test_cancelling_the_awaiting_task_stops_the_exec(
    served: tuple[FakeSessions, str],
) -> None:
    fake, address = served
    async with AsyncClient(address) as client:
        session = await client.create_session("python")
        running = asyncio.create_task(session.exec(["sleep"]))
        await asyncio.to_thread(fake.wait_for, lambda: bool(fake.execs[session.name]))
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
        await asyncio.to_thread(fake.wait_for, lambda: fake.stopped == ["e1"])


async def test_async_listing_and_watching(served: tuple[FakeSessions, str]) -> None:
    fake, address = served
    names = [fake.add(f"listed-{n}") for n in range(3)]
    async with AsyncClient(address, timeout=10) as client:
        assert [i.name async for i in client.list_sessions(page_size=2)] == names
        assert len(fake.lists) == 2
        async with client.watch_sessions(name=names[0]) as watch:
            assert (await anext(watch)).type is SessionEventType.USAGE
            await (await client.get_session(names[0])).delete()
            deleted = await anext(watch)
        assert deleted.type is SessionEventType.DELETED
        assert [e async for e in watch] == []
