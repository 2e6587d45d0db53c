"""Who the current call is, for every part of the server that serves it.

The auth interceptor decides the caller's tenant once per call and puts it
here; the executions, the reports and (later) sessions and operations read it
with `current_tenant()` instead of having it passed down through every layer.
The audit interceptor, outside the error interceptor, keeps a `CallRecord`
here that the inner layers fill in (the tenant, the resource the call
touched), so its one line per call can say what the call was about.
Both live in context variables: grpc.aio serves each call in its own task.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from codebeaker.server.tenancy import Tenant

_tenant: contextvars.ContextVar[Tenant | None] = contextvars.ContextVar(
    "codebeaker_tenant", default=None
)
_record: contextvars.ContextVar[CallRecord | None] = contextvars.ContextVar(
    "codebeaker_call_record", default=None
)


@dataclass
class CallRecord:
    """What one call was about, filled in while it runs (mutable on purpose)."""

    tenant: str = ""
    resource: str = ""
    execution_id: str = ""


def current_tenant() -> Tenant | None:
    """The calling tenant; None when the server runs without a tenants file."""
    return _tenant.get()


def set_tenant(tenant: Tenant) -> contextvars.Token[Tenant | None]:
    record = _record.get()
    if record is not None:
        record.tenant = tenant.name
    return _tenant.set(tenant)


def reset_tenant(token: contextvars.Token[Tenant | None]) -> None:
    _tenant.reset(token)


def begin_record() -> tuple[CallRecord, contextvars.Token[CallRecord | None]]:
    record = CallRecord()
    return record, _record.set(record)


def end_record(token: contextvars.Token[CallRecord | None]) -> None:
    _record.reset(token)


def note(*, resource: str = "", execution_id: str = "") -> None:
    """Tell the call's record what it touched (a language, later a session's name)."""
    record = _record.get()
    if record is None:
        return
    if resource:
        record.resource = resource
    if execution_id:
        record.execution_id = execution_id
