"""Rows of the embedded store's `operations` table as records, its page tokens, its directory."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.server.operations.store import OperationRecord, OperationState

COLUMNS = (
    "id, tenant, request_id, state, spec, trace_context, create_time, start_time, end_time, "
    "attempts, result, error, cancel_requested, worker, lease_expires"
)


def ensure_private_dir(path: Path) -> Path:
    """`path` (and parents) created if missing, the directory itself with mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def record(row: Sequence[Any]) -> OperationRecord:
    # sqlite3 rows are untyped: the schema above says what each column holds.
    (id, tenant, request_id, state, spec, trace, create, start, end) = row[:9]
    (attempts, result, error, cancel_requested, worker, lease) = row[9:]
    carrier = json.loads(str(trace))
    return OperationRecord(
        id=str(id),
        tenant=str(tenant),
        request_id=str(request_id),
        state=OperationState(str(state)),
        spec=bytes(spec),
        trace_context={str(k): str(v) for k, v in carrier.items()},
        create_time=float(create),
        start_time=None if start is None else float(start),
        end_time=None if end is None else float(end),
        attempts=int(attempts),
        result=None if result is None else bytes(result),
        error=None if error is None else bytes(error),
        cancel_requested=bool(cancel_requested),
        worker=str(worker),
        lease_expires=None if lease is None else float(lease),
    )


def token(seq: int) -> str:
    return base64.urlsafe_b64encode(f"before:{seq}".encode()).decode().rstrip("=")


def parse_token(token: str) -> int:
    if not token:
        return 2**63 - 1
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        kind, _, seq = text.partition(":")
        if kind != "before" or not seq.isdigit():
            raise ValueError(text)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest(
            "page_token", "not a page token this server issued", reason=Reason.VALUE_INVALID
        ) from None
