"""Code cells: one kernel per session, one cell at a time (kernels/PROTOCOL.md).

The kernel is an Exec of the session, started when the first cell comes and
again after it died. A reader follows its stdout for the life of the kernel
and hands the running cell what carries the cell's token (and the raw
output); a cell is a record like an Exec's (streamed output, display data,
the result last). The server's clock keeps each cell's wall limit: at the
limit, at the output cap or at the caller's signal the kernel gets SIGINT
(the cell ends `interrupted`); one that does not answer within
`INTERRUPT_GRACE` is killed, and the next cell starts a new kernel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal as signals
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from codebeaker.runtimes.errors import CodeBeakerError, InvalidRequest, Reason, SandboxFailure
from codebeaker.runtimes.model import LimitKind, Limits, Outcome, Output, Stream, Verdict
from codebeaker.runtimes.sessions.agent import (
    AgentExec,
    AgentLink,
    ExecEnded,
    ExecFailed,
    ExecOutput,
)
from codebeaker.runtimes.sessions.cells import (
    KernelStream,
    Message,
    Raw,
    kernel_command,
    new_token,
    request_line,
)
from codebeaker.runtimes.sessions.wire import Reply
from codebeaker.runtimes.supervisor.protocol import ExitReport
from codebeaker.runtimes.verdict import outcome_from_report
from codebeaker.server.sessions.execs import Display, ExecFailure, ExecRecord

log = logging.getLogger(__name__)
START_TIMEOUT = 30.0
INTERRUPT_GRACE = 2.0
DISPLAY_CAP = 3 << 20  # bytes of one display item at most (a gRPC message must hold it)
RESTARTED = "the interpreter ended; the next cell starts a fresh one"


@dataclass(frozen=True)
class _Ended:
    """The kernel Exec ended (its report), or could not be followed (why)."""

    report: ExitReport | None
    why: str = ""


_Event = Raw | Message | _Ended


class CellControl:
    """What a cell's caller may do: signal it (a cell takes no stdin)."""

    def __init__(self) -> None:
        self.signals: asyncio.Queue[int] = asyncio.Queue()

    async def write_stdin(self, data: bytes) -> None:
        raise InvalidRequest("stdin", "a code cell takes no stdin", reason=Reason.FIELD_UNSUPPORTED)

    def close_stdin(self) -> None:
        pass

    def signal(self, number: int) -> None:
        self.signals.put_nowait(number)


class Kernel:
    def __init__(self, language: str, link: Callable[[], AgentLink], env: dict[str, str]) -> None:
        self._language = language
        self._link = link
        self._env = env
        self._lock = asyncio.Lock()
        self._handle: AgentExec | None = None
        self._stream: KernelStream | None = None
        self._events: asyncio.Queue[_Event] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._handle is not None and not self._handle.ended

    async def run(
        self, record: ExecRecord, code: str, limits: Limits, control: CellControl
    ) -> None:
        """Run one cell to its end, publishing into `record` (the result last)."""
        async with self._lock:
            started = time.monotonic()
            try:
                restarted = await self._ensure_started()
                outcome = await self._cell(record, code, limits, control, started)
            except CodeBeakerError as error:
                record.publish(ExecFailure(error))
                return
            except Exception as error:  # ours: the cell's caller must still get an answer
                log.exception("cell %s failed", record.exec_id)
                record.publish(ExecFailure(SandboxFailure(f"the cell could not run: {error}")))
                return
            if restarted and self.starts > 1:
                fresh = "a fresh interpreter ran this cell (the previous one had ended)"
                outcome = _with_message(outcome, "; ".join(filter(None, (outcome.message, fresh))))
            record.publish(outcome)

    # ---------- the kernel process ----------

    async def _ensure_started(self) -> bool:
        if self.alive:
            return False
        token = new_token()
        self._events = asyncio.Queue()
        self._stream = KernelStream(token)
        handle = self._link().start(kernel_command(self._language, self._env, token))
        self._handle = handle
        self.starts += 1
        self._reader = asyncio.get_running_loop().create_task(self._read(handle, self._stream))
        try:
            async with asyncio.timeout(START_TIMEOUT):
                while True:
                    event = await self._events.get()
                    if isinstance(event, Message) and event.kind == "ready":
                        return True
                    if isinstance(event, _Ended):
                        raise SandboxFailure(
                            f"the {self._language} interpreter did not start: "
                            f"{event.why or _ended_text(event.report)}"
                        )
        except TimeoutError:
            handle.signal(int(signals.SIGKILL))
            raise SandboxFailure(
                f"the {self._language} interpreter did not start within {START_TIMEOUT:.0f}s"
            ) from None

    async def _read(self, handle: AgentExec, stream: KernelStream) -> None:
        events = self._events
        while True:
            frame = await handle.next()
            if isinstance(frame, ExecOutput):
                if frame.stream is Reply.STDOUT:
                    for event in stream.feed(frame.data):
                        events.put_nowait(event)
                else:  # the kernel's own stderr (a cell's goes through messages)
                    events.put_nowait(Message("err", {"raw": frame.data}))
            elif isinstance(frame, ExecEnded):
                events.put_nowait(_Ended(frame.report))
                return
            elif isinstance(frame, ExecFailed):
                events.put_nowait(_Ended(None, frame.message))
                return

    # ---------- one cell ----------

    async def _cell(
        self, record: ExecRecord, code: str, limits: Limits, control: CellControl, started: float
    ) -> Outcome:
        assert self._handle is not None and self._stream is not None
        token = new_token()
        self._stream.token = token
        await self._handle.write_stdin(request_line(token, code))
        deadline = started + limits.wall_time if limits.wall_time else None
        sent = {Stream.STDOUT: 0, Stream.STDERR: 0}
        cut: set[Stream] = set()
        interrupted: tuple[LimitKind | None, int] | None = None  # (limit, caller's signal)
        interrupted_at = 0.0
        while True:
            timeout = None
            if interrupted is not None:
                timeout = max(0.0, interrupted_at + INTERRUPT_GRACE - time.monotonic())
            elif deadline is not None:
                timeout = max(0.0, deadline - time.monotonic())
            event = await _next(self._events, control, timeout)
            if event is None:  # a deadline passed
                if interrupted is None:
                    interrupted, interrupted_at = (LimitKind.WALL_TIME, 0), time.monotonic()
                    self._handle.signal(int(signals.SIGINT))
                    continue
                self._handle.signal(int(signals.SIGKILL))  # it did not answer: a new one next time
                interrupted_at = time.monotonic() + 60  # wait for its end
                continue
            if isinstance(event, int):  # the caller's signal
                if interrupted is None:
                    interrupted, interrupted_at = (None, event), time.monotonic()
                self._handle.signal(event)
                continue
            if isinstance(event, _Ended):
                return self._kernel_ended(event, limits, started, interrupted, cut)
            if isinstance(event, Raw):
                self._output(record, Stream.STDOUT, event.data, sent, cut, limits)
            elif event.kind in ("out", "err"):
                stream = Stream.STDOUT if event.kind == "out" else Stream.STDERR
                data = event.fields["raw"] if "raw" in event.fields else event.data()
                assert isinstance(data, bytes)
                self._output(record, stream, data, sent, cut, limits)
            elif event.kind == "display":
                data = event.data()
                cap = min(limits.max_output_bytes, DISPLAY_CAP)
                record.publish(Display(event.text("mime"), data[:cap], len(data) > cap))
            elif event.kind == "done":
                return _cell_outcome(event, time.monotonic() - started, limits, interrupted, cut)
            if cut and interrupted is None:  # the output cap: stop the cell
                interrupted, interrupted_at = (LimitKind.OUTPUT, 0), time.monotonic()
                self._handle.signal(int(signals.SIGINT))

    def _output(
        self,
        record: ExecRecord,
        stream: Stream,
        data: bytes,
        sent: dict[Stream, int],
        cut: set[Stream],
        limits: Limits,
    ) -> None:
        room = limits.max_output_bytes - sent[stream]
        if len(data) > room:
            data = data[: max(room, 0)]
            cut.add(stream)
        if data:
            sent[stream] += len(data)
            record.publish(Output(stream, data))

    def _kernel_ended(
        self,
        event: _Ended,
        limits: Limits,
        started: float,
        interrupted: tuple[LimitKind | None, int] | None,
        cut: set[Stream],
    ) -> Outcome:
        wall = time.monotonic() - started
        if event.report is None:
            raise SandboxFailure(f"the interpreter could not be followed: {event.why}")
        outcome = outcome_from_report(event.report, limits)
        if interrupted is not None and interrupted[0] is LimitKind.WALL_TIME:
            truncated = (Stream.STDOUT in cut, Stream.STDERR in cut)
            outcome = _limit_outcome(LimitKind.WALL_TIME, limits, wall, outcome.signal, truncated)
        elif outcome.verdict is Verdict.OK:  # the kernel exited (sys.exit in a thread, ...)
            outcome = Outcome(
                Verdict.RUNTIME_ERROR,
                outcome.exit_code,
                0,
                wall,
                outcome.cpu_time,
                outcome.peak_memory_bytes,
                Stream.STDOUT in cut,
                Stream.STDERR in cut,
            )
        return _with_message(
            _with_wall(outcome, wall), f"{outcome.message or 'ended'}; {RESTARTED}"
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


async def _next(
    events: asyncio.Queue[_Event], control: CellControl, within: float | None
) -> _Event | int | None:
    """The kernel's next event, the caller's next signal, or None at the timeout."""
    if not control.signals.empty():
        return control.signals.get_nowait()
    getting = asyncio.ensure_future(events.get())
    signalled = asyncio.ensure_future(control.signals.get())
    done, pending = await asyncio.wait(
        {getting, signalled}, timeout=within, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    if getting in done:
        if signalled in done:
            control.signals.put_nowait(signalled.result())
        return getting.result()
    if signalled in done:
        return signalled.result()
    return None


def _cell_outcome(
    done: Message,
    wall: float,
    limits: Limits,
    interrupted: tuple[LimitKind | None, int] | None,
    cut: set[Stream],
) -> Outcome:
    status = done.text("status")
    truncated = (Stream.STDOUT in cut, Stream.STDERR in cut)
    if interrupted is not None and interrupted[0] is not None:
        return _limit_outcome(interrupted[0], limits, wall, 0, truncated)
    if status == "interrupted":
        number = interrupted[1] if interrupted else int(signals.SIGINT)
        return Outcome(
            Verdict.SIGNALED, 128 + number, number, wall, 0.0, 0, *truncated, message="interrupted"
        )
    if status == "error":
        message = f"{done.text('ename')}: {done.text('evalue')}".strip(": ")
        return Outcome(Verdict.RUNTIME_ERROR, 1, 0, wall, 0.0, 0, *truncated, message=message)
    return Outcome(Verdict.OK, 0, 0, wall, 0.0, 0, *truncated)


def _limit_outcome(
    kind: LimitKind,
    limits: Limits,
    wall: float,
    signal: int,
    truncated: tuple[bool, bool] = (False, False),
) -> Outcome:
    message = {
        LimitKind.WALL_TIME: f"wall time limit of {limits.wall_time:g}s exceeded",
        LimitKind.OUTPUT: f"output exceeded {limits.max_output_bytes} bytes",
    }.get(kind, kind.value)
    verdict = (
        Verdict.TIME_LIMIT_EXCEEDED
        if kind is LimitKind.WALL_TIME
        else Verdict.OUTPUT_LIMIT_EXCEEDED
    )
    return Outcome(
        verdict,
        128 + signal if signal else 0,
        signal,
        wall,
        0.0,
        0,
        *truncated,
        message=message,
        limit_exceeded=kind,
    )


def _with_message(outcome: Outcome, message: str) -> Outcome:
    return replace(outcome, message=message)


def _with_wall(outcome: Outcome, wall: float) -> Outcome:
    return replace(outcome, wall_time=wall)


def _ended_text(report: ExitReport | None) -> str:
    if report is None:
        return "it was lost"
    return f"it exited with {report.exit_code}" + (
        f" (signal {report.signal})" if report.signal else ""
    )
