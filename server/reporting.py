"""One record per execution, told once: to the log, to the metrics, and to the server span.

`Executions` makes an `ExecutionRecord` when an execution is over, whatever
ended it (a verdict, a service failure, a refusal, the caller leaving), and
the `ExecutionReporter` turns it into the execution's single log line
(`execution.finished`, `.failed`, `.rejected` or `.cancelled`, with the trace
and span ids of the RPC, the execution id, the tenant, language, verdict and durations,
phase by phase), the `codebeaker_executions_*` metrics, and attributes on
the RPC's span so the trace can be found by execution id. Never the
program's output.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry import trace

from codebeaker.runtimes.errors import CapacityExhausted, InvalidRequest
from codebeaker.runtimes.model import Job, Outcome
from codebeaker.runtimes.telemetry import PREFIX, job_attributes, outcome_attributes
from codebeaker.server.logs import event
from codebeaker.server.metrics import Metrics

log = logging.getLogger("codebeaker.executions")


@dataclass(frozen=True)
class ExecutionRecord:
    job: Job
    seconds: float  # server time, from asking for a slot to the end
    phases: Mapping[str, float]  # seconds per phase of this execution, by name
    outcome: Outcome | None = None  # the verdict, if the program ran to one
    error: BaseException | None = None  # what ended it otherwise
    tenant: str = ""  # the calling tenant's name; "" on a server without tenants


class ExecutionReporter:
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def report(self, record: ExecutionRecord) -> None:
        job, outcome = record.job, record.outcome
        fields: dict[str, object] = {
            "execution_id": job.execution_id,
            "request_id": job.request_id,
            "tenant": record.tenant,
            "language": job.language.id,
            "version": job.language.version,
            "duration_seconds": round(record.seconds, 6),
            "phases": {name: round(seconds, 6) for name, seconds in record.phases.items()},
        }
        span = trace.get_current_span()
        span.set_attributes({PREFIX + k: v for k, v in job_attributes(job).items()})
        if record.tenant:
            span.set_attribute(PREFIX + "tenant", record.tenant)
        if outcome is not None:
            self._metrics.execution_finished(job.language.id, outcome, record.seconds)
            span.set_attributes({PREFIX + k: v for k, v in outcome_attributes(outcome).items()})
            fields.update(
                verdict=outcome.verdict.value,
                exit_code=outcome.exit_code,
                signal=outcome.signal,
                limit_exceeded=outcome.limit_exceeded.value if outcome.limit_exceeded else "",
                wall_seconds=round(outcome.wall_time, 6),
                cpu_seconds=round(outcome.cpu_time, 6),
                peak_memory_bytes=outcome.peak_memory_bytes,
                stdout_truncated=outcome.stdout_truncated,
                stderr_truncated=outcome.stderr_truncated,
            )
            message = f"execution {job.execution_id} finished: {outcome.verdict.value}"
            event(log, logging.INFO, "execution.finished", message, **fields)
            return
        error = record.error
        if isinstance(error, CapacityExhausted | InvalidRequest):
            name, level = "execution.rejected", logging.INFO
        elif isinstance(error, Exception):
            name, level = "execution.failed", logging.WARNING
        else:  # cancelled, or the caller closed the stream before the verdict
            name, level = "execution.cancelled", logging.INFO
        detail = "caller left"
        if isinstance(error, Exception):
            detail = f"{type(error).__name__}: {error}"
        message = f"execution {job.execution_id} {name.partition('.')[2]}: {detail}"
        event(log, level, name, message, **fields, error=detail)
