"""Running one claimed operation through the same path as a direct Execute call.

The stored spec is validated again (the catalog may have changed since the
submit) and run by `Executions.collect` as the tenant that submitted it, so a
queued execution takes the same admission slot, the tenant's same quotas
(executions at once, CPU time) and gets the same report as a direct one.

What comes of it is a `RunOutcome`: the serialized ExecuteResponse (whatever
the program's verdict), or the google.rpc.Status of a domain error, or — when
no execution slot or the tenant's execution quota is free right now — a
`HandBack`: the job goes back to the queue unrun, its attempt not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from codebeaker.runtimes.errors import CapacityExhausted, CodeBeakerError, PermissionDenied
from codebeaker.server import caller
from codebeaker.server.executions import Executions
from codebeaker.server.operations.convert import execution_id, failure_status
from codebeaker.server.operations.store import OperationRecord, OperationState
from codebeaker.server.quotas import Tenancy
from codebeaker.server.requests import RequestRules, build_job
from codebeaker.server.responses import result_message
from codebeaker.v1 import execution_pb2 as pb

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    state: OperationState
    result: bytes | None = None
    error: bytes | None = None


@dataclass(frozen=True)
class HandBack:
    """Not run now: put it back in the queue and try again in `retry_after` seconds."""

    reason: str
    retry_after: float


class JobRunner:
    def __init__(
        self,
        executions: Executions,
        rules: Callable[[], RequestRules],
        tenancy: Tenancy | None,
    ) -> None:
        self._executions = executions
        self._rules = rules
        self._tenancy = tenancy

    async def run(self, record: OperationRecord) -> RunOutcome | HandBack:
        token = None
        try:
            if self._tenancy is not None:
                tenant = self._tenancy.tenants.by_name.get(record.tenant)
                if tenant is None:
                    raise PermissionDenied(
                        f"tenant {record.tenant!r} that submitted this operation is no longer "
                        "in the tenants file"
                    )
                token = caller.set_tenant(tenant)
            spec = pb.ExecutionSpec.FromString(record.spec)
            job = replace(build_job(spec, self._rules()), execution_id=execution_id(record))
            collected = await self._executions.collect(job)
        except CapacityExhausted as busy:  # no slot, or the tenant's executions/CPU quota
            return HandBack(str(busy), busy.retry_after)
        except CodeBeakerError as error:
            return RunOutcome(OperationState.FAILED, error=failure_status(error))
        except Exception as error:  # a bug: the operation fails, the worker carries on
            log.exception("operation %s failed unexpectedly", record.name)
            internal = CodeBeakerError(
                f"internal error ({type(error).__name__}); see the server log"
            )
            return RunOutcome(OperationState.FAILED, error=failure_status(internal))
        finally:
            if token is not None:
                caller.reset_tenant(token)
        response = pb.ExecuteResponse(
            result=result_message(
                collected.finished, job.execution_id, collected.outputs, collected.cut
            )
        )
        return RunOutcome(OperationState.SUCCEEDED, result=response.SerializeToString())
