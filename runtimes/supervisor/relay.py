"""The supervisor's frames, stage by stage, as the sandbox's events.

Frames arrive per stage: S (started), output, output files (H then D...), X
(the stage's report); E ends the request. After a PAUSE stage that succeeded,
`pause_due` tells the sandbox to do its part and send the go-on. `StageTracker` knows which stage
each frame belongs to, turns reports into judged stage results (via
`ResultBuilder`) and makes the final Finished event, also when the sandbox
was cut short mid-stage by the server's clock or an OOM kill of the whole
sandbox.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from codebeaker.runtimes.errors import SandboxFailure
from codebeaker.runtimes.judging import ResultBuilder
from codebeaker.runtimes.model import (
    RUN_STAGE,
    Event,
    Job,
    Outcome,
    Output,
    OutputFile,
    StageFinished,
    Started,
    Stream,
    Verdict,
)
from codebeaker.runtimes.supervisor.protocol import (
    PAUSE,
    Frame,
    FrameType,
    StagePlan,
    parse_exit_report,
    parse_file_header,
)
from codebeaker.runtimes.verdict import outcome_from_report

_STREAMS = {FrameType.STDOUT: Stream.STDOUT, FrameType.STDERR: Stream.STDERR}


class StageTracker:
    def __init__(self, job: Job, plans: tuple[StagePlan, ...]) -> None:
        self._plans = plans
        self._index = 0
        self._builder = ResultBuilder(job)
        self._files: list[tuple[OutputFile, bytearray]] = []
        self._started = False
        self.done = False
        # A PAUSE stage succeeded: the supervisor waits for the server's go-on.
        self.pause_due = False

    @property
    def plan(self) -> StagePlan:
        """The stage running now (the last one once all have ended)."""
        return self._plans[min(self._index, len(self._plans) - 1)]

    def next_wall_time(self, frame_type: FrameType) -> float:
        """The wall time the server allows from this frame on: the running
        stage's after S; the next stage's after X (its setup counts)."""
        ahead = 1 if frame_type is FrameType.EXIT else 0
        return self._plans[min(self._index + ahead, len(self._plans) - 1)].limits.wall_time

    def feed(self, frame: Frame) -> Iterator[Event]:
        if self.done or (self._index >= len(self._plans) and frame.type is not FrameType.END):
            raise SandboxFailure(f"supervisor sent {frame.type.name} after its last stage")
        if frame.type is FrameType.STARTED:
            if not self._started:
                self._started = True
                yield Started()
        elif frame.type in _STREAMS:
            stage = self.plan.stage
            self._builder.output(stage, frame.type is FrameType.STDOUT, frame.payload)
            yield Output(_STREAMS[frame.type], frame.payload, stage)
        elif frame.type is FrameType.FILE_HEADER:
            self._files.append((parse_file_header(frame.payload, self.plan.outputs), bytearray()))
        elif frame.type is FrameType.FILE_DATA:
            if not self._files:
                raise SandboxFailure("supervisor sent file data without a header")
            self._files[-1][1].extend(frame.payload)
        elif frame.type is FrameType.EXIT:
            report = parse_exit_report(frame.payload)
            yield from self._stage_ended(outcome_from_report(report, self.plan.limits))
        elif frame.type is FrameType.END:
            self.done = True
            yield self._builder.finished()

    def cut_short(self, outcome: Outcome) -> Iterator[Event]:
        """The sandbox ended mid-stage with `outcome`: that stage ends, and so does all."""
        if self._index < len(self._plans):
            yield from self._stage_ended(outcome)
        self.done = True
        yield self._builder.finished()

    def _stage_ended(self, outcome: Outcome) -> Iterator[Event]:
        found = (replace(header, content=bytes(data)) for header, data in self._files)
        files = tuple(sorted(found, key=lambda f: f.path))
        self._files = []
        plan = self.plan
        result = self._builder.stage_ended(plan.stage, outcome, files)
        self.pause_due = bool(plan.flags & PAUSE) and result.outcome.verdict is Verdict.OK
        self._index += 1
        stage = plan.stage
        if stage != RUN_STAGE:  # a plain run is reported by Finished alone
            yield StageFinished(result)
