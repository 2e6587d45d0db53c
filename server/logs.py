"""The server's log lines: one JSON object per line for machines, or a console line for people.

Every record carries the trace and span ids of the span current where it was
logged (with tracing off these are still the caller's, when it sent a
`traceparent`), so a log line leads to its trace and back. Structured events
go through `event()`: a dotted name (`execution.finished`, `server.listening`)
and flat fields, which the JSON format writes as keys and the console format
as `key=value` pairs. Program output never passes through here: executions
are logged by their verdict and measurements, not their bytes.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import TextIO

from opentelemetry import trace

_EVENT = "codebeaker_event"
_FIELDS = "codebeaker_fields"


def event(logger: logging.Logger, level: int, name: str, message: str, **fields: object) -> None:
    """Log one structured event (`name`, a readable `message`, and its fields)."""
    logger.log(level, message, extra={_EVENT: name, _FIELDS: fields}, stacklevel=2)


def _trace_ids() -> dict[str, str]:
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


class _Stamp(logging.Filter):
    """Takes the trace ids where the record is made (formatting may happen later)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.setdefault("codebeaker_trace", _trace_ids())
        return True


def _fields(record: logging.LogRecord) -> Mapping[str, object]:
    fields = getattr(record, _FIELDS, None)
    return fields if isinstance(fields, Mapping) else {}


def _timestamp(record: logging.LogRecord) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{seconds}.{int(record.msecs):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, _EVENT, "log"),
            "message": record.getMessage(),
            **getattr(record, "codebeaker_trace", {}),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        pairs = {**_fields(record), **getattr(record, "codebeaker_trace", {})}
        details = " ".join(f"{key}={_console_value(value)}" for key, value in pairs.items())
        local = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{local}.{int(record.msecs):03d} {record.levelname:<7} {record.getMessage()}"
        if details:
            line += f"  {details}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _console_value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping):
        return ",".join(f"{k}:{_console_value(v)}" for k, v in value.items())
    return str(value)


def configure(level: str, form: str, stream: TextIO = sys.stderr) -> logging.Handler:
    """Route every log record of the process to `stream` in `form` ("json" or "console")."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_Stamp())
    handler.setFormatter(JsonFormatter() if form.lower() == "json" else ConsoleFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
