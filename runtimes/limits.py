"""Server defaults and maxima for every limit, and resolving a request against them.

A request may lower any limit or raise it up to the maximum; above the maximum
it is refused (INVALID_ARGUMENT naming the field), never silently clamped.
"""

from __future__ import annotations

from dataclasses import dataclass

from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.runtimes.model import Limits

MIB = 1024 * 1024


@dataclass(frozen=True)
class RequestedLimits:
    """Limits as the caller sent them; None means "the server's default"."""

    wall_time: float | None = None
    cpu_time: float | None = None
    memory_bytes: int | None = None
    max_processes: int | None = None
    max_output_bytes: int | None = None


@dataclass(frozen=True)
class LimitPolicy:
    default: Limits
    maximum: Limits

    def __post_init__(self) -> None:
        for name in Limits.__dataclass_fields__:
            if getattr(self.default, name) > getattr(self.maximum, name):
                raise ValueError(f"default {name} is above its maximum")
            if getattr(self.default, name) <= 0:
                raise ValueError(f"default {name} must be positive")

    def resolve(self, requested: RequestedLimits, prefix: str) -> Limits:
        """`requested` with defaults filled in; InvalidRequest names `prefix`.<limit>."""
        values: dict[str, float | int] = {}
        for name in Limits.__dataclass_fields__:
            asked = getattr(requested, name)
            maximum = getattr(self.maximum, name)
            field = f"{prefix}.{name}"
            if asked is None:
                values[name] = getattr(self.default, name)
            elif asked <= 0:
                raise InvalidRequest(
                    field, f"must be positive, got {asked}", reason=Reason.LIMIT_NOT_POSITIVE
                )
            elif asked > maximum:
                raise InvalidRequest(
                    field,
                    f"{asked} is above the server's maximum {maximum}",
                    reason=Reason.LIMIT_ABOVE_MAXIMUM,
                )
            else:
                values[name] = asked
        return Limits(
            wall_time=float(values["wall_time"]),
            cpu_time=float(values["cpu_time"]),
            memory_bytes=int(values["memory_bytes"]),
            max_processes=int(values["max_processes"]),
            max_output_bytes=int(values["max_output_bytes"]),
        )


DEFAULT_POLICY = LimitPolicy(
    default=Limits(
        wall_time=10.0,
        cpu_time=10.0,
        memory_bytes=256 * MIB,
        max_processes=64,
        max_output_bytes=1 * MIB,
    ),
    maximum=Limits(
        wall_time=120.0,
        cpu_time=120.0,
        memory_bytes=4096 * MIB,
        max_processes=1024,
        max_output_bytes=64 * MIB,
    ),
)
