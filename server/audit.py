"""The audit trail: one JSON line per call of ours, and the per-tenant request count.

An interceptor OUTSIDE the error interceptor, so what it records is the status
the caller got (the one the error interceptor decided), for every kind of
RPC. It opens a `CallRecord` (see `caller`) that the inner layers fill in: the
auth interceptor the tenant, the executions the resource (the language; later
a session's or an operation's name) and the execution id. At the end of the
call it writes `{"time", "tenant", "method", "resource", "code", "peer",
"execution_id", "duration_seconds"}` to `--audit-log`, and counts the call in
`codebeaker_tenant_requests_total` when the server has tenants.

Lines are written by a thread of their own: a call only queues its line, so a
slow disk never stalls the event loop unless thousands of lines are pending
(then a call waits for room rather than the trail losing lines).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TypeVar

from grpc import aio

from codebeaker.server import caller
from codebeaker.server.errors import OUR_METHODS
from codebeaker.server.interception import Interceptor, Method
from codebeaker.server.rpc_telemetry import final_code

log = logging.getLogger(__name__)
Req = TypeVar("Req")
Resp = TypeVar("Resp")
PENDING_LINES = 10_000
Count = Callable[[str, str], None]  # (tenant, code)


class AuditLog:
    """Appends JSON lines to a file from a writer thread."""

    def __init__(self, path: Path) -> None:
        # Opened now, so an unwritable path stops the server at start-up (OSError).
        self.path = path
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")
        self._lines: queue.Queue[str | None] = queue.Queue(PENDING_LINES)
        self._thread = threading.Thread(target=self._write, name="codebeaker-audit", daemon=True)
        self._thread.start()

    def write(self, entry: Mapping[str, object]) -> None:
        self._lines.put(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def flush(self) -> None:
        """Block until every line written so far is in the file (a thread's call)."""
        self._lines.join()

    async def close(self) -> None:
        self._lines.put(None)
        await asyncio.to_thread(self._thread.join)
        with contextlib.suppress(OSError):  # what could not be written was reported already
            self._file.close()

    def _write(self) -> None:
        failing = False
        while True:
            line = self._lines.get()
            try:
                if line is None:
                    return
                self._file.write(line)
                if self._lines.empty():
                    self._file.flush()
                failing = False
            except OSError as error:
                # The writer must outlive a full disk: were it to stop, the queue would fill
                # and every call wait for it. A line that cannot be written is lost, loudly.
                if not failing:
                    log.error("audit log %s: cannot write (%s); lines are lost", self.path, error)
                failing = True
            finally:
                self._lines.task_done()


def timestamp(seconds: float) -> str:
    whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    return f"{whole}.{int(seconds % 1 * 1000):03d}Z"


class AuditInterceptor(Interceptor):
    """Records our calls; absent when there is neither an audit log nor tenants."""

    def __init__(self, audit: AuditLog | None, count: Count | None) -> None:
        self._audit = audit
        self._count = count

    def intercepts(self, method: Method) -> bool:
        wanted = self._audit is not None or self._count is not None
        return wanted and method.name.startswith(OUR_METHODS)

    @contextlib.asynccontextmanager
    async def intercept(
        self, method: Method, context: aio.ServicerContext[Req, Resp]
    ) -> AsyncIterator[None]:
        record, token = caller.begin_record()
        started = time.time()
        clock = time.perf_counter()
        error: BaseException | None = None
        try:
            yield
        except BaseException as caught:
            error = caught
            raise
        finally:
            with contextlib.suppress(ValueError):  # see auth.py: a stream closed elsewhere
                caller.end_record(token)
            code = final_code(context, error).name
            if self._count is not None:
                self._count(record.tenant, code)
            if self._audit is not None:
                self._audit.write(
                    {
                        "time": timestamp(started),
                        "tenant": record.tenant,
                        "method": method.name,
                        "resource": record.resource,
                        "code": code,
                        "peer": context.peer(),
                        "execution_id": record.execution_id,
                        "duration_seconds": round(time.perf_counter() - clock, 6),
                    }
                )
