"""Domain errors: what the service refuses, or fails with.

The server maps each of these to one gRPC status in a single interceptor; the
code that raises them (the sandbox layer, the server's request checks, its
tenancy) never thinks about status codes.
"""

from __future__ import annotations


class CodeBeakerError(Exception):
    """Base of every error the service maps to a status for the caller."""


class InvalidRequest(CodeBeakerError):
    """The caller sent something we will not run; `field` names the culprit."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class UnknownLanguage(InvalidRequest):
    """No runtime answers to the requested language id or alias."""

    def __init__(self, requested: str, known: list[str], field: str = "language") -> None:
        shown = requested if len(requested) <= 64 else requested[:64] + "..."
        super().__init__(
            field,
            f"unknown language {shown!r}; known languages: {', '.join(sorted(known))}",
        )
        self.requested = requested
        self.known = sorted(known)


class EngineUnavailable(CodeBeakerError):
    """The container engine cannot be reached; the program never started."""


class SandboxFailure(CodeBeakerError):
    """The sandbox broke in a way that is ours, not the program's."""


class CapacityExhausted(CodeBeakerError):
    """No execution slot became free in time; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class QuotaExceeded(CapacityExhausted):
    """A tenant's quota `quota` would be exceeded; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float, tenant: str, quota: str) -> None:
        super().__init__(message, retry_after)
        self.tenant = tenant
        self.quota = quota


class Unauthenticated(CodeBeakerError):
    """The call carries no credentials, or ones no tenant has."""


class PermissionDenied(CodeBeakerError):
    """The caller is known but may not do this."""


class NotFound(CodeBeakerError):
    """No such resource (also: one that belongs to another tenant)."""

    def __init__(self, resource: str, message: str) -> None:
        super().__init__(message)
        self.resource = resource


class FailedPrecondition(CodeBeakerError):
    """The resource is not in a state that allows this (e.g. a paused session)."""
