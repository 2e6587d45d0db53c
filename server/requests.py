"""Turning an ExecutionSpec into a validated Job, or an INVALID_ARGUMENT naming the field.

Everything a caller sends is checked here, before any container exists: the
language, the program's size and file paths, stdin, args, env, limits (the
run's and the compile's), output file paths and test cases.
"""

from __future__ import annotations

import posixpath
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from google.protobuf.duration_pb2 import Duration

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.runtimes.limits import LimitPolicy, RequestedLimits
from codebeaker.runtimes.model import Comparison, Job, Limits, OutputFiles, SourceFile, TestCase
from codebeaker.runtimes.packages.allowlist import Allowlist, Asked
from codebeaker.v1 import execution_pb2 as pb

MAX_ARGS = 256
MAX_ENV = 128
MAX_STRING = 4096
MAX_PATH = 255
MAX_REQUEST_ID = 128
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


MAX_OUTPUT_PATTERNS = 32
_COMPARISONS = {
    pb.COMPARISON_UNSPECIFIED: Comparison.EXACT,
    pb.COMPARISON_EXACT: Comparison.EXACT,
    pb.COMPARISON_IGNORE_TRAILING_WHITESPACE: Comparison.IGNORE_TRAILING_WHITESPACE,
}


@dataclass(frozen=True)
class RequestRules:
    catalog: Catalog
    policy: LimitPolicy
    max_source: int
    max_stdin: int
    max_files: int
    compile_policy: LimitPolicy | None = None  # None: compiles get the run's limits
    max_test_cases: int = 256
    output_file_caps: tuple[int, int] = (1 << 20, 8 << 20)  # per file, per run
    # Languages whose sandbox cannot change its memory limit once started
    # (gVisor): their compile shares the run's memory limit.
    fixed_memory_languages: frozenset[str] = frozenset()
    allowlist: Allowlist = field(default_factory=Allowlist)


def build_job(spec: pb.ExecutionSpec, rules: RequestRules) -> Job:
    language = rules.catalog.select(
        _language(spec.language), spec.version, "spec.language", "spec.version"
    )
    files, entrypoint = _program(spec, language, rules)
    if len(spec.stdin) > rules.max_stdin:
        raise InvalidRequest(
            "spec.stdin",
            f"{len(spec.stdin)} bytes is above the maximum {rules.max_stdin}",
            reason=Reason.TOO_LARGE,
        )
    limits = rules.policy.resolve(_limits("spec.limits", spec.limits), "spec.limits")
    return Job(
        execution_id=uuid.uuid4().hex,
        language=language,
        files=files,
        entrypoint=entrypoint,
        limits=limits,
        stdin=spec.stdin,
        args=_args(spec.args),
        env=MappingProxyType(_env(spec.env)),
        request_id=_request_id(spec.request_id),
        compile_limits=_compile_limits(spec, language.id, limits, rules)
        if language.compiled
        else None,
        output_files=_output_files(spec.output_files, rules),
        test_cases=_test_cases(spec, rules),
        packages=rules.allowlist.check(language, asked_packages(spec.packages), "spec.packages"),
    )


def asked_packages(packages: Sequence[pb.PackageRequest]) -> list[Asked]:
    return [Asked(p.name, p.version) for p in packages]


def _compile_limits(
    spec: pb.ExecutionSpec, language: str, limits: Limits, rules: RequestRules
) -> Limits:
    """The compile's own time, output and memory limits; processes are the run's.

    Unset, the compile's memory limit is the run's.
    """
    requested = _limits("spec.compile_limits", spec.compile_limits)
    if requested.max_processes is not None:
        raise InvalidRequest(
            "spec.compile_limits.max_processes",
            "the compile shares the sandbox's process cap with the run: set spec.limits",
            reason=Reason.FIELD_UNSUPPORTED,
        )
    if requested.memory_bytes is not None and language in rules.fixed_memory_languages:
        raise InvalidRequest(
            "spec.compile_limits.memory_bytes",
            f"{language} runs under gVisor, whose sandbox cannot change its memory limit: "
            "the compile shares spec.limits.memory_bytes",
            reason=Reason.FIELD_UNSUPPORTED,
        )
    policy = rules.compile_policy or rules.policy
    resolved = policy.resolve(requested, prefix="spec.compile_limits")
    memory = limits.memory_bytes if requested.memory_bytes is None else resolved.memory_bytes
    return replace(resolved, memory_bytes=memory, max_processes=limits.max_processes)


def _output_files(patterns: Sequence[str], rules: RequestRules) -> OutputFiles:
    if len(patterns) > MAX_OUTPUT_PATTERNS:
        raise InvalidRequest(
            "spec.output_files",
            f"{len(patterns)} paths; the maximum is {MAX_OUTPUT_PATTERNS}",
            reason=Reason.TOO_MANY,
        )
    checked = tuple(
        _path(f"spec.output_files[{index}]", pattern) for index, pattern in enumerate(patterns)
    )
    if len(set(checked)) != len(checked):
        raise InvalidRequest(
            "spec.output_files", "the same path is named twice", reason=Reason.PATH_DUPLICATE
        )
    file_cap, total_cap = rules.output_file_caps
    return OutputFiles(checked, file_cap, total_cap)


def _test_cases(spec: pb.ExecutionSpec, rules: RequestRules) -> tuple[TestCase, ...]:
    cases = spec.test_cases
    if not cases:
        return ()
    if spec.stdin:
        raise InvalidRequest(
            "spec.stdin",
            "must be empty with test_cases: each case has its own",
            reason=Reason.FIELDS_CONFLICT,
        )
    if len(cases) > rules.max_test_cases:
        raise InvalidRequest(
            "spec.test_cases",
            f"{len(cases)} cases; the maximum is {rules.max_test_cases}",
            reason=Reason.TOO_MANY,
        )
    total = 0
    checked: list[TestCase] = []
    for index, case in enumerate(cases):
        if case.comparison not in _COMPARISONS:
            raise InvalidRequest(
                f"spec.test_cases[{index}].comparison",
                f"unknown comparison {case.comparison}",
                reason=Reason.VALUE_UNKNOWN,
            )
        expected = case.expected_stdout if case.HasField("expected_stdout") else None
        total += len(case.stdin) + len(expected or b"")
        checked.append(TestCase(case.stdin, expected, _COMPARISONS[case.comparison]))
    if total > rules.max_stdin:
        raise InvalidRequest(
            "spec.test_cases",
            f"{total} bytes of stdin and expected output; the maximum is {rules.max_stdin}",
            reason=Reason.TOO_LARGE,
        )
    return tuple(checked)


def _language(name: str) -> str:
    if not name.strip():
        raise InvalidRequest(
            "spec.language", "required (e.g. python, javascript)", reason=Reason.FIELD_REQUIRED
        )
    return name


def _program(
    spec: pb.ExecutionSpec, language: LanguageSpec, rules: RequestRules
) -> tuple[tuple[SourceFile, ...], str]:
    if spec.source and spec.files:
        raise InvalidRequest(
            "spec.files", "set either source or files, not both", reason=Reason.FIELDS_CONFLICT
        )
    if spec.source:
        if len(spec.source) > rules.max_source:
            raise InvalidRequest(
                "spec.source",
                f"{len(spec.source)} bytes is above the maximum {rules.max_source}",
                reason=Reason.TOO_LARGE,
            )
        if spec.entrypoint:
            name = _path("spec.entrypoint", spec.entrypoint)
        else:
            name = language.file_name_for(spec.source)
        return (SourceFile(name, spec.source),), name
    if not spec.files:
        raise InvalidRequest(
            "spec.source", "the program is empty: set source or files", reason=Reason.FIELD_REQUIRED
        )
    if len(spec.files) > rules.max_files:
        raise InvalidRequest(
            "spec.files",
            f"{len(spec.files)} files; the maximum is {rules.max_files}",
            reason=Reason.TOO_MANY,
        )
    files: list[SourceFile] = []
    seen: set[str] = set()
    total = 0
    for index, item in enumerate(spec.files):
        field = f"spec.files[{index}].path"
        path = _path(field, item.path)
        if path in seen:
            raise InvalidRequest(field, f"duplicate path {path!r}", reason=Reason.PATH_DUPLICATE)
        clash = _directory_clash(path, seen)
        if clash:
            raise InvalidRequest(
                field,
                f"{path!r} and {clash!r}: one would be the other's folder",
                reason=Reason.PATH_CONFLICT,
            )
        seen.add(path)
        total += len(item.content)
        files.append(SourceFile(path, item.content))
    if total > rules.max_source:
        raise InvalidRequest(
            "spec.files",
            f"{total} bytes in all; the maximum is {rules.max_source}",
            reason=Reason.TOO_LARGE,
        )
    entrypoint = _path("spec.entrypoint", spec.entrypoint) if spec.entrypoint else files[0].path
    if entrypoint not in seen:
        raise InvalidRequest(
            "spec.entrypoint",
            f"{entrypoint!r} is not one of the files",
            reason=Reason.ENTRYPOINT_NOT_IN_FILES,
        )
    return tuple(files), entrypoint


def _directory_clash(path: str, others: set[str]) -> str | None:
    """Another path that `path` would have to be a folder of, or the other way round."""
    for other in others:
        if other.startswith(path + "/") or path.startswith(other + "/"):
            return other
    return None


def _path(field: str, raw: str) -> str:
    """A normalised relative path inside the workspace, or InvalidRequest."""
    if not raw:
        raise InvalidRequest(field, "empty path", reason=Reason.PATH_INVALID)
    if "\x00" in raw or any(ord(c) < 32 for c in raw):
        raise InvalidRequest(field, "path contains control characters", reason=Reason.PATH_INVALID)
    if len(raw.encode()) > MAX_PATH:
        raise InvalidRequest(
            field, f"path longer than {MAX_PATH} bytes", reason=Reason.PATH_INVALID
        )
    if raw.startswith("/"):
        raise InvalidRequest(field, f"{raw!r} must be relative", reason=Reason.PATH_INVALID)
    if ".." in raw.split("/"):
        raise InvalidRequest(
            field, f"{raw!r} must stay inside the workspace (no '..')", reason=Reason.PATH_INVALID
        )
    normal = posixpath.normpath(raw)
    if normal == ".":
        raise InvalidRequest(field, f"{raw!r} names no file", reason=Reason.PATH_INVALID)
    return normal


def _args(args: Sequence[str]) -> tuple[str, ...]:
    values = tuple(args)
    if len(values) > MAX_ARGS:
        raise InvalidRequest(
            "spec.args",
            f"{len(values)} arguments; the maximum is {MAX_ARGS}",
            reason=Reason.TOO_MANY,
        )
    for index, value in enumerate(values):
        _plain_string(f"spec.args[{index}]", value)
    return values


def _env(env: Mapping[str, str]) -> dict[str, str]:
    items = dict(env)
    if len(items) > MAX_ENV:
        raise InvalidRequest(
            "spec.env", f"{len(items)} variables; the maximum is {MAX_ENV}", reason=Reason.TOO_MANY
        )
    for key, value in items.items():
        if not _ENV_NAME.match(key):
            raise InvalidRequest(
                f"spec.env[{key[:40]!r}]",
                "names are letters, digits and _",
                reason=Reason.VALUE_INVALID,
            )
        _plain_string(f"spec.env[{key!r}]", value)
    return items


def _plain_string(field: str, value: str) -> None:
    if "\x00" in value:
        raise InvalidRequest(field, "contains a NUL byte", reason=Reason.VALUE_INVALID)
    if len(value.encode()) > MAX_STRING:
        raise InvalidRequest(field, f"longer than {MAX_STRING} bytes", reason=Reason.TOO_LARGE)


def _request_id(value: str) -> str:
    if len(value) > MAX_REQUEST_ID or not value.isprintable():
        raise InvalidRequest(
            "spec.request_id",
            f"at most {MAX_REQUEST_ID} printable characters",
            reason=Reason.VALUE_INVALID,
        )
    return value


def _seconds(field: str, duration: Duration) -> float | None:
    value = duration.seconds + duration.nanos / 1e9
    if value < 0:
        raise InvalidRequest(field, "must not be negative", reason=Reason.LIMIT_NOT_POSITIVE)
    return value or None


def _limits(prefix: str, limits: pb.ResourceLimits) -> RequestedLimits:
    for name in ("memory_bytes", "max_processes", "max_output_bytes"):
        if getattr(limits, name) < 0:
            raise InvalidRequest(
                f"{prefix}.{name}", "must not be negative", reason=Reason.LIMIT_NOT_POSITIVE
            )
    return RequestedLimits(
        wall_time=_seconds(f"{prefix}.wall_time", limits.wall_time),
        cpu_time=_seconds(f"{prefix}.cpu_time", limits.cpu_time),
        memory_bytes=limits.memory_bytes or None,
        max_processes=limits.max_processes or None,
        max_output_bytes=limits.max_output_bytes or None,
    )
