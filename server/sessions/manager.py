"""The sessions of this server: their life cycle, Execs and files.

Every session has a record (kept in the registry) and, while it lives, a
`Live` entry: its sandbox, the link to its agent, its Execs. The manager
creates sessions (from a spare when one fits), pauses, resumes and deletes
them, starts Execs (a pump per Exec publishes the agent's frames into the
Exec's record, whoever follows it) and forwards file requests. `Upkeep`
(upkeep.py) expires, samples and reconciles them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from codebeaker.runtimes.catalog import LanguageSpec
from codebeaker.runtimes.errors import (
    AlreadyExists,
    CapacityExhausted,
    CodeBeakerError,
    FailedPrecondition,
    HostLost,
    InvalidRequest,
    NotFound,
    Reason,
    SandboxFailure,
)
from codebeaker.runtimes.layout import program_env
from codebeaker.runtimes.model import Limits, Output, OutputFile, OutputFiles, SourceFile, Stream
from codebeaker.runtimes.packages.cache import PackageCache
from codebeaker.runtimes.packages.requirements import Requirement
from codebeaker.runtimes.sessions.agent import (
    AgentExec,
    AgentLink,
    AgentRefused,
    ExecCommand,
    ExecEnded,
    ExecFailed,
    ExecOutput,
    ExecStartedFrame,
    RunningExec,
)
from codebeaker.runtimes.sessions.backend import SessionBackend, SessionLimits, SessionSandbox
from codebeaker.runtimes.sessions.cells import has_kernel
from codebeaker.runtimes.sessions.wire import DirEntry, Reply
from codebeaker.runtimes.telemetry import annotate, background_phase, phase
from codebeaker.runtimes.verdict import outcome_from_report
from codebeaker.server.logs import event
from codebeaker.server.sessions.cells import CellControl, Kernel
from codebeaker.server.sessions.execs import ExecBegan, ExecFailure, ExecRecord
from codebeaker.server.sessions.record import LIVE_STATES, SessionRecord, State
from codebeaker.server.sessions.registry import Registry
from codebeaker.server.sessions.spares import Spare, Spares, new_session_id
from codebeaker.server.sessions.watch import EventType, Hub, SessionEvent

log = logging.getLogger(__name__)
EXEC_HISTORY = 100  # Exec records kept per session (the oldest finished go first)
CAPACITY_RETRY = 5.0


@dataclass(frozen=True)
class CreateAsk:
    """A checked CreateSession request."""

    spec: LanguageSpec
    version: str
    sandbox: SessionLimits
    exec_limits: Limits
    idle_timeout: float
    lifetime: float
    labels: Mapping[str, str]
    env: Mapping[str, str]
    session_id: str = ""
    request_id: str = ""
    tenant: str = ""
    packages: tuple[Requirement, ...] = ()


@dataclass(frozen=True)
class ExecAsk:
    """A checked ExecStart."""

    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str
    limits: Limits
    detached: bool
    stdin: bytes = b""
    close_stdin: bool = False


@dataclass(frozen=True)
class Usage:
    cpu_time: float = 0.0
    memory_bytes: int = 0
    peak_memory_bytes: int = 0
    disk_bytes: int = 0
    sample_time: float = 0.0


@dataclass
class Live:
    record: SessionRecord
    sandbox: SessionSandbox | None = None
    link: AgentLink | None = None
    execs: OrderedDict[str, ExecRecord] = field(default_factory=OrderedDict)
    running: dict[str, ExecControl] = field(default_factory=dict)
    kernel: Kernel | None = None
    usage: Usage = field(default_factory=Usage)
    ending: str = ""  # why the server is ending it (its Execs' callers are told)


ExecObserver = Callable[[SessionRecord, ExecRecord], None]


class ExecControl(Protocol):
    """What an Exec's caller may send it: a command's stdin and signals (a cell's signals)."""

    async def write_stdin(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def signal(self, number: int) -> None: ...


class Sessions:
    def __init__(
        self,
        backend: SessionBackend,
        registry: Registry,
        *,
        specs: Callable[[str, str], LanguageSpec],
        max_sessions: int,
        spares: Spares,
        resizable: Callable[[str], bool],
        on_exec_done: ExecObserver | None = None,
        packages: PackageCache | None = None,
    ) -> None:
        self.backend = backend
        self._packages = packages
        self.registry = registry
        self.hub = Hub()
        self.spares = spares
        self._specs = specs
        self._max_sessions = max_sessions
        self._resizable = resizable
        self._on_exec_done = on_exec_done
        self.records: dict[str, SessionRecord] = {}
        self.live: dict[str, Live] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ---------- start-up ----------

    async def load(self) -> None:
        """Find the sessions a previous server left, and take them up again."""
        for record in self.registry.all():
            self.records[record.id] = record
        live = [r for r in self.records.values() if r.state in LIVE_STATES]
        if live:
            log.info("taking up %d sessions from the registry", len(live))
        await asyncio.gather(*(self._take_up(record) for record in live))

    async def _take_up(self, record: SessionRecord) -> None:
        if record.state is State.CREATING or not record.sandbox_id:
            await self.lose(record.id, "the server stopped while it was being created")
            return
        entry = Live(record)
        self.live[record.id] = entry
        for kept in self.registry.execs(record.id):
            restored = ExecRecord.restored(kept)
            entry.execs[restored.exec_id] = restored
        try:
            entry.sandbox = await self.backend.attach(record.id, record.sandbox_id)
            if record.state is not State.PAUSED:  # a frozen agent answers after resume
                await self._open_link(entry)
        except CodeBeakerError as error:
            await self.lose(record.id, f"its sandbox could not be reached again: {error}")
            return
        event(
            log,
            logging.INFO,
            "session.resumed_by_server",
            f"session {record.id} taken up",
            session=record.id,
            state=record.state.value,
        )

    async def _open_link(self, entry: Live) -> None:
        assert entry.sandbox is not None
        link = AgentLink(entry.sandbox.channel)
        running = await link.open()
        self._attach_link(entry, link)
        for item in running:
            self._adopt_exec(entry, link, item)

    def _attach_link(self, entry: Live, link: AgentLink) -> None:
        entry.link = link
        link.on_end = lambda reason: self._spawn(self._link_ended(entry, link, reason))

    def _adopt_exec(self, entry: Live, link: AgentLink, item: RunningExec) -> None:
        """An Exec that outlived the previous server: a detached one is followed again
        (its output before now is gone); any other lost its caller with that server."""
        handle = link.adopt(item)
        record = ExecRecord(str(item.id), ("?",), detached=item.detached)
        record.publish(ExecBegan(record.exec_id))
        limits = replace(entry.record.exec_limits, memory_bytes=entry.record.sandbox.memory_bytes)
        self._track(entry, record, handle, limits)
        if not item.detached:
            handle.signal(9)

    # ---------- life cycle ----------

    def get(self, session_id: str) -> SessionRecord:
        record = self.records.get(session_id)
        if record is None:
            raise NotFound(f"sessions/{session_id}", f"no session sessions/{session_id}")
        return record

    def listing(self, states: Iterable[State], labels: Mapping[str, str]) -> list[SessionRecord]:
        wanted = set(states) or set(LIVE_STATES)
        return [
            r
            for r in self.records.values()
            if r.state in wanted and all(r.labels.get(k) == v for k, v in labels.items())
        ]

    async def create(self, ask: CreateAsk) -> SessionRecord:
        existing = self._by_request(ask.request_id, ask.tenant)
        if existing is not None:
            return existing
        if ask.session_id and ask.session_id in self.records:
            raise AlreadyExists(f"session sessions/{ask.session_id} exists already")
        live_count = sum(1 for r in self.records.values() if r.state in LIVE_STATES)
        if self._max_sessions and live_count >= self._max_sessions:
            raise CapacityExhausted(
                f"{live_count} sessions are live, the most this server keeps (--max-sessions); "
                "delete one or retry later",
                CAPACITY_RETRY,
                reason=Reason.SESSIONS_EXHAUSTED,
            )
        spare = None if ask.session_id or ask.packages else self._fitting_spare(ask)
        session_id = spare.sandbox.session_id if spare else ask.session_id or new_session_id()
        now = time.time()
        record = SessionRecord(
            id=session_id,
            language=ask.spec.id,
            version=ask.version,
            sandbox=ask.sandbox,
            exec_limits=ask.exec_limits,
            idle_timeout=ask.idle_timeout,
            lifetime=ask.lifetime,
            create_time=now,
            labels=dict(ask.labels),
            env=dict(ask.env),
            request_id=ask.request_id,
            tenant=ask.tenant,
            update_time=now,
            last_activity_time=now,
        )
        self.records[session_id] = record
        entry = Live(record)
        self.live[session_id] = entry
        self.registry.save(record)
        self._publish(EventType.CREATED, record)
        with phase(
            "session.create", session=session_id, language=ask.spec.id, spare=spare is not None
        ):
            await self._start_sandbox(entry, ask, spare)
        record.sandbox_id = entry.sandbox.sandbox_id if entry.sandbox else ""
        self._set_state(record, State.READY, "created")
        return record

    async def _start_sandbox(self, entry: Live, ask: CreateAsk, spare: Spare | None) -> None:
        record = entry.record
        try:
            if spare is not None:
                entry.sandbox = spare.sandbox
                if self.spares.limits != ask.sandbox:
                    await self.backend.resize(spare.sandbox, ask.sandbox)
                self._attach_link(entry, spare.link)
            else:
                async with self._mounted(ask, record) as spec:
                    with phase("session.launch", session=record.id):
                        entry.sandbox = await self.backend.launch_session(
                            spec, ask.sandbox, record.id
                        )
                record.sandbox_id = entry.sandbox.sandbox_id
                self.registry.save(record)
                with phase("session.hello", session=record.id):
                    await self._open_link(entry)
        except BaseException:
            await self._forget_failed_create(entry)
            raise

    @contextlib.asynccontextmanager
    async def _mounted(self, ask: CreateAsk, record: SessionRecord) -> AsyncIterator[LanguageSpec]:
        """The session's spec with its package set installed and mounted; the set is
        held while its container is made (then the container's label holds it)."""
        if not ask.packages:
            yield ask.spec
            return
        if self._packages is None:
            raise FailedPrecondition(
                "this server installs no packages", reason=Reason.PACKAGE_INSTALL_FAILED
            )
        async with self._packages.mounted(ask.spec, ask.packages) as spec:
            record.package_set = spec.package_set
            installed = self._packages.resolved(spec.package_set)
            record.packages = {r.name: installed.get(r.name, "") for r in ask.packages}
            self.registry.save(record)
            yield spec

    def _spec_of(self, record: SessionRecord) -> LanguageSpec:
        """The spec every Exec and cell of `record` runs with (its packages' variables too)."""
        spec = self._specs(record.language, record.version)
        if record.package_set:
            spec = replace(spec, env={**spec.env, **spec.installer_env})
        return spec

    def _fitting_spare(self, ask: CreateAsk) -> Spare | None:
        limits = self.spares.limits
        if ask.sandbox.disk_bytes != limits.disk_bytes:
            return None
        if ask.sandbox != limits and not self._resizable(ask.spec.id):
            return None
        return self.spares.take(ask.spec)

    async def _forget_failed_create(self, entry: Live) -> None:
        record = entry.record
        self.live.pop(record.id, None)
        self.records.pop(record.id, None)
        self.registry.delete(record.id)
        if entry.link is not None:
            await entry.link.close()
        if entry.sandbox is not None:
            with contextlib.suppress(CodeBeakerError):
                await self.backend.remove(entry.sandbox.sandbox_id)
        self._publish(EventType.DELETED, record, reason="it could not be created")

    def _by_request(self, request_id: str, tenant: str) -> SessionRecord | None:
        if not request_id:
            return None
        for record in self.records.values():
            if record.request_id == request_id and record.tenant == tenant:
                return record
        return None

    async def delete(self, session_id: str) -> None:
        record = self.get(session_id)
        with phase("session.delete", session=session_id):
            await self._end(record, "deleted", keep=False)

    async def terminate(self, session_id: str, reason: str) -> None:
        """End a live session for the server's own reason (its idle timeout, its lifetime)."""
        record = self.records.get(session_id)
        if record is not None and record.state in LIVE_STATES:
            with background_phase("session.terminate", session=session_id, reason=reason):
                await self._end(record, reason, keep=True)

    async def _end(self, record: SessionRecord, reason: str, *, keep: bool) -> None:
        entry = self.live.pop(record.id, None)
        if entry is not None:
            entry.ending = reason
            if entry.link is not None:
                await entry.link.close()
                self._fail_running(
                    entry,
                    FailedPrecondition(f"the session ended: {reason}", reason=Reason.SESSION_ENDED),
                )
        if record.sandbox_id:
            await self.backend.remove(record.sandbox_id)
        if keep:
            self._set_state(record, State.TERMINATED, reason)
        else:
            self.records.pop(record.id, None)
            self.registry.delete(record.id)
            self._publish(EventType.DELETED, record, reason=reason)
        event(
            log,
            logging.INFO,
            "session.ended",
            f"session {record.id} ended: {reason}",
            session=record.id,
            reason=reason,
        )

    async def lose(self, session_id: str, reason: str) -> None:
        """Its sandbox vanished or died outside our control: FAILED, LOST."""
        record = self.records.get(session_id)
        if record is None or record.state not in LIVE_STATES:
            return
        entry = self.live.pop(session_id, None)
        if entry is not None:
            entry.ending = reason
            if entry.link is not None:
                await entry.link.close()
            self._fail_running(entry, HostLost(f"the session's sandbox was lost: {reason}"))
        previous = record.state
        self._set_state(record, State.FAILED, reason, quiet=True)
        self._publish(EventType.LOST, record, previous, reason)
        event(
            log,
            logging.WARNING,
            "session.lost",
            f"session {session_id} lost: {reason}",
            session=session_id,
            reason=reason,
        )
        if record.sandbox_id:
            with contextlib.suppress(CodeBeakerError):
                await self.backend.remove(record.sandbox_id)

    async def _link_ended(self, entry: Live, link: AgentLink, reason: str) -> None:
        """The agent's stream ended under a live session: its container died or was
        removed (the events say which first), or only our attach broke (attach again)."""
        if entry.ending or entry.link is not link:
            return
        await asyncio.sleep(0.2)  # the engine's own event usually explains it first
        if entry.ending or entry.record.id not in self.live:
            return
        try:
            listing = {item.sandbox_id: item for item in await self.backend.listing()}
            found = listing.get(entry.record.sandbox_id)
            if found is None or not found.running:
                await self.lose(entry.record.id, f"its agent's stream ended ({reason})")
                return
            entry.sandbox = await self.backend.attach(entry.record.id, entry.record.sandbox_id)
            self._fail_running(entry, HostLost(f"the session's stream broke: {reason}"))
            if not found.paused:
                await self._open_link(entry)
            else:
                entry.link = None
        except CodeBeakerError as error:
            await self.lose(entry.record.id, f"its agent's stream ended ({reason}); {error}")

    def _fail_running(self, entry: Live, error: CodeBeakerError) -> None:
        for record in entry.execs.values():
            if not record.done:
                record.publish(ExecFailure(error))
        entry.running.clear()

    async def pause(self, session_id: str) -> SessionRecord:
        entry = self._usable(session_id, allow_paused=True)
        record = entry.record
        if record.state is State.PAUSED:
            return record
        with phase("session.pause", session=session_id):
            await self.backend.pause(record.sandbox_id)
        self._set_state(record, State.PAUSED, "paused")
        return record

    async def resume(self, session_id: str) -> SessionRecord:
        entry = self._usable(session_id, allow_paused=True)
        record = entry.record
        if record.state is not State.PAUSED:
            return record
        with phase("session.resume", session=session_id):
            await self.backend.resume(record.sandbox_id)
            if entry.link is None or entry.link.lost:
                await self._open_link(entry)
        self._touch(record)
        self._set_state(record, State.BUSY if entry.running else State.READY, "resumed")
        return record

    def _usable(self, session_id: str, *, allow_paused: bool = False) -> Live:
        record = self.get(session_id)
        entry = self.live.get(session_id)
        if record.state is State.CREATING or (
            entry is not None and entry.link is None and record.state is not State.PAUSED
        ):
            raise FailedPrecondition(
                f"session {record.name} is still being created", reason=Reason.SESSION_NOT_READY
            )
        if entry is None or not record.state.live:
            raise FailedPrecondition(
                f"session {record.name} is {record.state.value}: {record.reason}",
                reason=Reason.SESSION_ENDED,
            )
        if record.state is State.PAUSED and not allow_paused:
            raise FailedPrecondition(
                f"session {record.name} is paused; resume it first", reason=Reason.SESSION_PAUSED
            )
        return entry

    # ---------- Execs ----------

    def start_exec(self, session_id: str, ask: ExecAsk) -> tuple[ExecRecord, AgentExec]:
        entry = self._usable(session_id)
        assert entry.link is not None
        record = entry.record
        env = program_env(self._spec_of(record), {**record.env, **ask.env})
        command = ExecCommand(
            argv=ask.argv,
            env=env,
            cwd=ask.cwd,
            wall_time=ask.limits.wall_time,
            cpu_time=ask.limits.cpu_time,
            output_cap=ask.limits.max_output_bytes,
            detached=ask.detached,
            close_stdin=ask.close_stdin and not ask.stdin,
        )
        handle = entry.link.start(command)
        exec_record = ExecRecord(str(handle.id), ask.argv, detached=ask.detached)
        exec_record.publish(ExecBegan(exec_record.exec_id))
        limits = replace(ask.limits, memory_bytes=record.sandbox.memory_bytes)
        self._track(entry, exec_record, handle, limits)
        record.exec_count += 1
        self._touch(record)
        if record.state is State.READY:
            self._set_state(record, State.BUSY, "an Exec runs")
        if ask.stdin:
            self._spawn(self._first_stdin(handle, ask.stdin, ask.close_stdin))
        event(
            log,
            logging.INFO,
            "session.exec",
            f"session {record.id} exec {exec_record.exec_id}",
            session=record.id,
            exec_id=exec_record.exec_id,
            argv0=ask.argv[0],
            detached=ask.detached,
        )
        return exec_record, handle

    def start_cell(
        self, session_id: str, code: str, limits: Limits
    ) -> tuple[ExecRecord, CellControl]:
        """Run a cell in the session's interpreter (started on the first cell)."""
        entry = self._usable(session_id)
        record = entry.record
        if not has_kernel(record.language):
            raise InvalidRequest(
                "start.code",
                f"{record.language} sessions have no interpreter for cells; run a command",
                reason=Reason.FIELD_UNSUPPORTED,
            )
        if entry.kernel is None:
            env = program_env(self._spec_of(record), record.env)
            entry.kernel = Kernel(record.language, lambda: self._current_link(entry), env)
        cell = ExecRecord(f"cell-{secrets.token_hex(4)}", ("<cell>",), detached=False, code=code)
        cell.publish(ExecBegan(cell.exec_id))
        control = CellControl()
        self._remember(entry, cell, control)
        record.exec_count += 1
        self._touch(record)
        if record.state is State.READY:
            self._set_state(record, State.BUSY, "a cell runs")
        limits = replace(limits, memory_bytes=record.sandbox.memory_bytes)
        self._spawn(self._run_cell(entry, cell, code, limits, control))
        return cell, control

    def _current_link(self, entry: Live) -> AgentLink:
        if entry.link is None:
            raise FailedPrecondition(
                "the session's sandbox is not reachable now", reason=Reason.SESSION_NOT_READY
            )
        return entry.link

    async def _run_cell(
        self, entry: Live, cell: ExecRecord, code: str, limits: Limits, control: CellControl
    ) -> None:
        assert entry.kernel is not None
        try:
            with phase("session.cell", session=entry.record.id, exec_id=cell.exec_id) as traced:
                await entry.kernel.run(cell, code, limits, control)
                traced.set(verdict=cell.outcome.verdict.value if cell.outcome else "lost")
        finally:
            self._exec_ended(entry, cell)

    async def _first_stdin(self, handle: AgentExec, data: bytes, close: bool) -> None:
        await handle.write_stdin(data)
        if close:
            handle.close_stdin()

    def _track(self, entry: Live, record: ExecRecord, handle: AgentExec, limits: Limits) -> None:
        self._remember(entry, record, handle)
        self._spawn(self._pump(entry, record, handle, limits))

    def _remember(self, entry: Live, record: ExecRecord, control: ExecControl) -> None:
        entry.execs[record.exec_id] = record
        entry.running[record.exec_id] = control
        while len(entry.execs) > EXEC_HISTORY:
            oldest = next((k for k, v in entry.execs.items() if v.done), None)
            if oldest is None:
                break
            del entry.execs[oldest]

    async def _pump(
        self, entry: Live, record: ExecRecord, handle: AgentExec, limits: Limits
    ) -> None:
        with phase(
            "session.exec",
            session=entry.record.id,
            exec_id=record.exec_id,
            argv0=record.argv[0],
            detached=record.detached,
        ) as traced:
            await self._follow_agent(entry, record, handle, limits)
            outcome = record.outcome
            traced.set(verdict=outcome.verdict.value if outcome else "lost")

    async def _follow_agent(
        self, entry: Live, record: ExecRecord, handle: AgentExec, limits: Limits
    ) -> None:
        try:
            while not record.done:
                frame = await handle.next()
                if record.done:  # failed by the session's end meanwhile
                    break
                if isinstance(frame, ExecStartedFrame):
                    annotate(started_after=round(time.time() - record.start_time, 6))
                elif isinstance(frame, ExecOutput):
                    stream = Stream.STDOUT if frame.stream is Reply.STDOUT else Stream.STDERR
                    record.publish(Output(stream, frame.data))
                elif isinstance(frame, ExecEnded):
                    record.publish(outcome_from_report(frame.report, limits))
                elif isinstance(frame, ExecFailed):
                    record.publish(ExecFailure(self._exec_error(entry, frame.message)))
        except CodeBeakerError as error:
            if not record.done:
                record.publish(ExecFailure(error))
        finally:
            self._exec_ended(entry, record)

    def _exec_error(self, entry: Live, message: str) -> CodeBeakerError:
        if entry.ending:
            return FailedPrecondition(
                f"the session ended: {entry.ending}", reason=Reason.SESSION_ENDED
            )
        if entry.link is not None and entry.link.lost:
            return HostLost(f"the session's sandbox went away: {entry.link.lost}")
        return SandboxFailure(f"the session could not run the command: {message}")

    def _exec_ended(self, entry: Live, record: ExecRecord) -> None:
        entry.running.pop(record.exec_id, None)
        if record.done:
            self.registry.save_exec(entry.record.id, record.to_json())
        session = entry.record
        if entry.ending:
            return
        self._touch(session)
        if not entry.running and session.state is State.BUSY:
            self._set_state(session, State.READY, "no Exec runs")
        else:
            self.registry.save(session)
        if self._on_exec_done is not None:
            self._on_exec_done(session, record)
        outcome = record.outcome
        verdict = outcome.verdict.value if outcome else "lost"
        event(
            log,
            logging.INFO,
            "session.exec_done",
            f"session {session.id} exec {record.exec_id}: {verdict}",
            session=session.id,
            exec_id=record.exec_id,
            verdict=verdict,
            seconds=round(record.end_time - record.start_time, 6),
        )

    def exec_record(self, session_id: str, exec_id: str) -> ExecRecord:
        entry = self.live.get(session_id)
        self.get(session_id)
        record = entry.execs.get(exec_id) if entry else None
        if record is None:
            raise NotFound(
                f"sessions/{session_id}/execs/{exec_id}",
                f"no exec {exec_id} in sessions/{session_id}",
            )
        return record

    def exec_records(self, session_id: str) -> list[ExecRecord]:
        self.get(session_id)
        entry = self.live.get(session_id)
        return list(entry.execs.values()) if entry else []

    # ---------- files ----------

    async def write_files(self, session_id: str, files: Iterable[SourceFile]) -> tuple[int, int]:
        link = self._link(session_id)
        count = size = 0
        for item in files:
            try:
                await link.write_file(item.path, item.content, item.mode)
            except AgentRefused as error:
                raise FailedPrecondition(f"{item.path}: {error}") from None
            count, size = count + 1, size + len(item.content)
        self._touch(self.records[session_id])
        return count, size

    async def read_files(
        self, session_id: str, patterns: Iterable[str], caps: OutputFiles
    ) -> list[OutputFile]:
        link = self._link(session_id)
        try:
            files = await link.read_files(patterns, caps)
        except AgentRefused as error:
            raise FailedPrecondition(str(error)) from None
        self._touch(self.records[session_id])
        return files

    async def list_files(self, session_id: str, path: str) -> tuple[list[DirEntry], bool]:
        link = self._link(session_id)
        try:
            listed = await link.list_dir(path)
        except AgentRefused as error:
            raise FailedPrecondition(f"{path or '.'}: {error}") from None
        self._touch(self.records[session_id])
        return listed

    def _link(self, session_id: str) -> AgentLink:
        entry = self._usable(session_id)
        assert entry.link is not None
        return entry.link

    # ---------- usage ----------

    async def sample(self, session_id: str) -> Usage:
        """The session's usage now (its disk from the agent unless it is paused)."""
        entry = self.live.get(session_id)
        if entry is None or entry.sandbox is None:
            return Usage()
        counted = self.backend.usage(entry.sandbox.sandbox_id)
        disk = entry.usage.disk_bytes
        if entry.link is not None and entry.record.state is not State.PAUSED:
            with contextlib.suppress(CodeBeakerError):
                async with asyncio.timeout(2.0):
                    disk = (await entry.link.usage()).get("disk_bytes", disk)
        entry.usage = Usage(
            cpu_time=counted.cpu_time or 0.0,
            memory_bytes=counted.memory_bytes or 0,
            peak_memory_bytes=counted.peak_memory_bytes or 0,
            disk_bytes=disk,
            sample_time=time.time(),
        )
        return entry.usage

    def last_usage(self, session_id: str) -> Usage:
        entry = self.live.get(session_id)
        return entry.usage if entry else Usage()

    # ---------- bookkeeping ----------

    def _touch(self, record: SessionRecord) -> None:
        record.last_activity_time = record.update_time = time.time()

    def _set_state(
        self, record: SessionRecord, state: State, reason: str, *, quiet: bool = False
    ) -> None:
        previous = record.state
        record.state, record.reason, record.update_time = state, reason, time.time()
        self.registry.save(record)
        if not quiet and previous is not state:
            self._publish(EventType.STATE_CHANGED, record, previous, reason)
            event(
                log,
                logging.INFO,
                "session.state",
                f"session {record.id}: {state.value} ({reason})",
                session=record.id,
                state=state.value,
                previous=previous.value,
                reason=reason,
            )

    def _publish(
        self,
        kind: EventType,
        record: SessionRecord,
        previous: State | None = None,
        reason: str = "",
    ) -> None:
        self.hub.publish(SessionEvent(kind, replace(record), previous, reason or record.reason))

    def publish_usage(self, record: SessionRecord) -> None:
        self._publish(EventType.USAGE, record)

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self, *, end_sessions: bool) -> None:
        """Stop following the sessions; they keep running unless `end_sessions`."""
        await self.spares.close()
        for session_id in list(self.live):
            entry = self.live[session_id]
            if end_sessions:
                with contextlib.suppress(CodeBeakerError):
                    await self._end(entry.record, "the server stopped", keep=True)
            else:
                for exec_id, control in entry.running.items():
                    if not entry.execs[exec_id].detached:
                        control.signal(9)
                entry.ending = "the server stopped"
                if entry.link is not None:
                    await entry.link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.registry.close()
