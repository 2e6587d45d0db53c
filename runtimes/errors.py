"""Domain errors: what the service refuses, or fails with.

The server maps each of these to one gRPC status in a single interceptor; the
code that raises them (the sandbox layer, the server's request checks, its
tenancy) never thinks about status codes.

Each error carries a `reason`: a stable, UPPER_SNAKE_CASE word that callers may
branch on (it reaches them as `google.rpc.ErrorInfo.reason`), unlike the
message, which is for people and may change. A class has one reason by default;
`InvalidRequest` is raised with the reason for its kind of problem
(`Reason.LIMIT_ABOVE_MAXIMUM`, `Reason.PATH_INVALID`, ...). A reason, once
published, is never renamed (README.md lists them).
"""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Every reason the service sends; a `str`, so a plain string works where one is asked."""

    # INVALID_ARGUMENT: the caller's request.
    REQUEST_INVALID = "REQUEST_INVALID"  # no more specific reason applies
    REQUEST_UNPARSABLE = "REQUEST_UNPARSABLE"  # the bytes are not the request message
    FIELD_REQUIRED = "FIELD_REQUIRED"
    FIELDS_CONFLICT = "FIELDS_CONFLICT"  # two fields that may not be set together
    FIELD_UNSUPPORTED = "FIELD_UNSUPPORTED"  # a field this server cannot honour here
    VALUE_INVALID = "VALUE_INVALID"  # a malformed string (NUL byte, bad name, ...)
    VALUE_UNKNOWN = "VALUE_UNKNOWN"  # an enum value this server does not know
    LANGUAGE_UNKNOWN = "LANGUAGE_UNKNOWN"
    VERSION_UNAVAILABLE = "VERSION_UNAVAILABLE"
    LIMIT_NOT_POSITIVE = "LIMIT_NOT_POSITIVE"
    LIMIT_ABOVE_MAXIMUM = "LIMIT_ABOVE_MAXIMUM"
    TOO_LARGE = "TOO_LARGE"  # bytes: source, files, stdin, a string
    TOO_MANY = "TOO_MANY"  # items: files, args, env, test cases, output paths
    PATH_INVALID = "PATH_INVALID"  # empty, absolute, '..', control characters, too long
    PATH_DUPLICATE = "PATH_DUPLICATE"
    PATH_CONFLICT = "PATH_CONFLICT"  # one path would be the other's folder
    ENTRYPOINT_NOT_IN_FILES = "ENTRYPOINT_NOT_IN_FILES"
    PACKAGE_NOT_ALLOWED = "PACKAGE_NOT_ALLOWED"  # not on --package-allowlist, or not that version
    # RESOURCE_EXHAUSTED
    CAPACITY_EXHAUSTED = "CAPACITY_EXHAUSTED"
    QUOTA_EXCEEDED = "QUOTA_EXCEEDED"
    QUEUE_FULL = "QUEUE_FULL"  # --max-queued operations are waiting
    # UNAVAILABLE
    ENGINE_UNAVAILABLE = "ENGINE_UNAVAILABLE"
    HOST_LOST = "HOST_LOST"  # the sandbox host went away mid-run (killed, engine restarted)
    QUEUE_UNAVAILABLE = "QUEUE_UNAVAILABLE"  # the operation store cannot be reached
    # UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, FAILED_PRECONDITION
    UNAUTHENTICATED = "UNAUTHENTICATED"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    NOT_FOUND = "NOT_FOUND"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    PACKAGE_INSTALL_FAILED = "PACKAGE_INSTALL_FAILED"  # FAILED_PRECONDITION: see the message
    SESSION_PAUSED = "SESSION_PAUSED"  # FAILED_PRECONDITION: resume it first
    SESSION_ENDED = "SESSION_ENDED"  # FAILED_PRECONDITION: terminated or failed
    SESSION_NOT_READY = "SESSION_NOT_READY"  # FAILED_PRECONDITION: still being created
    SESSIONS_EXHAUSTED = "SESSIONS_EXHAUSTED"  # RESOURCE_EXHAUSTED: --max-sessions are live
    ALREADY_EXISTS = "ALREADY_EXISTS"  # ALREADY_EXISTS: the id is taken
    # UNIMPLEMENTED: a part of the contract this server does not serve yet.
    UNIMPLEMENTED = "UNIMPLEMENTED"
    # The error of a google.longrunning operation (never of an RPC).
    CANCELLED = "CANCELLED"  # CANCELLED: the operation was cancelled before it ended
    ATTEMPTS_EXHAUSTED = "ATTEMPTS_EXHAUSTED"  # ABORTED: it ended its worker max-attempts times
    # INTERNAL: ours, never the caller's.
    SANDBOX_FAILURE = "SANDBOX_FAILURE"
    INTERNAL = "INTERNAL"


class CodeBeakerError(Exception):
    """Base of every error the service maps to a status for the caller."""

    reason: str = Reason.INTERNAL

    def __init__(self, *args: object, reason: str | None = None) -> None:
        super().__init__(*args)
        if reason is not None:
            self.reason = reason


class InvalidRequest(CodeBeakerError):
    """The caller sent something we will not run; `field` names the culprit."""

    reason = Reason.REQUEST_INVALID

    def __init__(self, field: str, problem: str, *, reason: str | None = None) -> None:
        super().__init__(f"{field}: {problem}", reason=reason)
        self.field = field
        self.problem = problem


class UnknownLanguage(InvalidRequest):
    """No runtime answers to the requested language id or alias."""

    reason = Reason.LANGUAGE_UNKNOWN

    def __init__(self, requested: str, known: list[str], field: str = "language") -> None:
        shown = requested if len(requested) <= 64 else requested[:64] + "..."
        super().__init__(
            field,
            f"unknown language {shown!r}; known languages: {', '.join(sorted(known))}",
        )
        self.requested = requested
        self.known = sorted(known)


class UnknownVersion(InvalidRequest):
    """The language has no version that the requested one names."""

    reason = Reason.VERSION_UNAVAILABLE

    def __init__(
        self, language: str, requested: str, known: list[str], field: str = "version"
    ) -> None:
        shown = requested if len(requested) <= 64 else requested[:64] + "..."
        read = [version for version in known if version]
        if read:
            hint = (
                f"this server has {', '.join(read)} (ask for one exactly or by a prefix "
                f"of whole parts, such as {_prefix(read[0])!r}; unset is {read[0]})"
            )
        else:
            hint = "its versions are not read yet; leave the version unset for the default"
        super().__init__(field, f"{language} {shown!r} is not available; {hint}")
        self.requested = requested
        self.known = read


def _prefix(version: str) -> str:
    parts = version.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


class Unavailable(CodeBeakerError):
    """Something the service depends on cannot be reached; retrying later may succeed."""


class EngineUnavailable(Unavailable):
    """The container engine cannot be reached; the program never started."""

    reason = Reason.ENGINE_UNAVAILABLE


class HostLost(Unavailable):
    """The host ended mid-run without reporting, and not by an OOM kill: killed from
    outside, or the engine went away. The program's outcome is unknown; retry."""

    reason = Reason.HOST_LOST


class SandboxFailure(CodeBeakerError):
    """The sandbox broke in a way that is ours, not the program's."""

    reason = Reason.SANDBOX_FAILURE


class CapacityExhausted(CodeBeakerError):
    """No execution slot became free in time; retry after `retry_after` seconds."""

    reason = Reason.CAPACITY_EXHAUSTED

    def __init__(self, message: str, retry_after: float, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class QuotaExceeded(CapacityExhausted):
    """A tenant's quota `quota` would be exceeded; retry after `retry_after` seconds."""

    reason = Reason.QUOTA_EXCEEDED

    def __init__(
        self,
        message: str,
        retry_after: float,
        tenant: str,
        quota: str,
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, retry_after, reason=reason)
        self.tenant = tenant
        self.quota = quota


class Unauthenticated(CodeBeakerError):
    """The call carries no credentials, or ones no tenant has."""

    reason = Reason.UNAUTHENTICATED


class PermissionDenied(CodeBeakerError):
    """The caller is known but may not do this."""

    reason = Reason.PERMISSION_DENIED


class NotFound(CodeBeakerError):
    """No such resource (also: one that belongs to another tenant)."""

    reason = Reason.NOT_FOUND

    def __init__(self, resource: str, message: str, *, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.resource = resource


class FailedPrecondition(CodeBeakerError):
    """The resource is not in a state that allows this (e.g. a paused session)."""

    reason = Reason.FAILED_PRECONDITION


class Unimplemented(CodeBeakerError):
    """A part of the contract this server does not serve yet (UNIMPLEMENTED)."""

    reason = Reason.UNIMPLEMENTED


class AlreadyExists(CodeBeakerError):
    """A resource with the asked-for id exists already (ALREADY_EXISTS)."""

    reason = Reason.ALREADY_EXISTS
