"""The ExecutionService servicer: protobuf in, domain calls, protobuf out. Nothing else.

Errors are not handled here: domain exceptions propagate to the error
interceptor, the one place that maps them to gRPC status codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from google.longrunning import operations_pb2  # type: ignore[import-untyped, unused-ignore]
from grpc import aio

from codebeaker.runtimes.catalog import Catalog, version_aliases
from codebeaker.runtimes.errors import FailedPrecondition
from codebeaker.runtimes.model import Finished, Output, StageFinished, Started
from codebeaker.runtimes.packages.allowlist import Allowlist
from codebeaker.server.executions import Executions
from codebeaker.server.requests import RequestRules, build_job
from codebeaker.server.responses import output_chunks, result_message, stage_message
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

# SubmitExecution's handler: the request in, the google.longrunning.Operation out.
Submit = Callable[[pb.SubmitExecutionRequest], Awaitable[operations_pb2.Operation]]


class ExecutionServicer(pb_grpc.ExecutionServiceServicer):
    def __init__(
        self,
        executions: Executions,
        rules: Callable[[], RequestRules],
        submit: Submit | None = None,
    ) -> None:
        # `rules` is read per call: the catalog learns image versions after start-up.
        self._executions = executions
        self._rules = rules
        self._submit = submit

    async def Execute(
        self,
        request: pb.ExecuteRequest,
        context: aio.ServicerContext[pb.ExecuteRequest, pb.ExecuteResponse],
    ) -> pb.ExecuteResponse:
        job = build_job(request.spec, self._rules())
        collected = await self._executions.collect(job)
        return pb.ExecuteResponse(
            result=result_message(
                collected.finished, job.execution_id, collected.outputs, collected.cut
            )
        )

    async def ExecuteStream(
        self,
        request: pb.ExecuteStreamRequest,
        context: aio.ServicerContext[pb.ExecuteStreamRequest, pb.ExecuteStreamResponse],
    ) -> AsyncIterator[pb.ExecuteStreamResponse]:
        job = build_job(request.spec, self._rules())
        sequence = 0

        def message(**event: object) -> pb.ExecuteStreamResponse:
            nonlocal sequence
            sequence += 1
            return pb.ExecuteStreamResponse(sequence=sequence, **event)  # type: ignore[arg-type]

        async with contextlib.aclosing(self._executions.events(job)) as events:
            async for event in events:
                if isinstance(event, Started):
                    yield message(
                        started=pb.ExecutionStarted(
                            execution_id=job.execution_id,
                            language=job.language.id,
                            version=job.language.version,
                        )
                    )
                elif isinstance(event, Output):
                    for chunk in output_chunks(event.stream, event.data, event.stage):
                        yield message(output=chunk)
                elif isinstance(event, StageFinished):
                    yield message(stage_result=stage_message(event.result))
                elif isinstance(event, Finished):
                    yield message(result=result_message(event, job.execution_id))

    async def ListRuntimes(
        self,
        request: pb.ListRuntimesRequest,
        context: aio.ServicerContext[pb.ListRuntimesRequest, pb.ListRuntimesResponse],
    ) -> pb.ListRuntimesResponse:
        rules = self._rules()
        return pb.ListRuntimesResponse(runtimes=runtime_messages(rules.catalog, rules.allowlist))

    async def SubmitExecution(
        self,
        request: pb.SubmitExecutionRequest,
        context: aio.ServicerContext[pb.SubmitExecutionRequest, operations_pb2.Operation],
    ) -> operations_pb2.Operation:
        if self._submit is None:
            raise FailedPrecondition("this server has no operation queue")
        return await self._submit(request)


def runtime_messages(catalog: Catalog, allowlist: Allowlist | None = None) -> list[pb.Runtime]:
    """Every version of every language, the default first, with its version aliases."""
    allowlist = allowlist or Allowlist()
    return [
        pb.Runtime(
            language=spec.id,
            version=spec.version,
            version_aliases=version_aliases(spec, catalog.versions(spec.id)),
            is_default=spec.is_default,
            aliases=list(spec.aliases),
            file_name=spec.file_name,
            compiled=spec.compiled,
            packages=[
                pb.Package(name=name, version=version)
                for name, version in sorted(spec.packages.items())
            ],
            installable=[
                pb.PackageRequest(name=name, version=", ".join(str(c) for c in constraints))
                for name, constraints in sorted(allowlist.allowed(spec.id).items())
            ],
        )
        for spec in catalog.runtimes()
    ]
