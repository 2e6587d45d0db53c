"""Domain errors of the sandbox layer.

The server maps each of these to one gRPC status in a single interceptor; code
below the server raises them and never thinks about status codes.
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
