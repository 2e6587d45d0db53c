"""Jobs for unit tests of the logic between requests and the sandbox."""

from __future__ import annotations

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.limits import DEFAULT_POLICY
from codebeaker.runtimes.model import Job, OutputFiles, SourceFile, TestCase

LIMITS = DEFAULT_POLICY.default


def job_for(language: str, cases: tuple[TestCase, ...] = (), outputs: tuple[str, ...] = ()) -> Job:
    """A two-file job in `language` with the server's default limits."""
    spec = Catalog.load().resolve(language)
    return Job(
        execution_id="e1",
        language=spec,
        files=(SourceFile(spec.file_name, b"source"), SourceFile("util.h", b"")),
        entrypoint=spec.file_name,
        limits=LIMITS,
        stdin=b"plain stdin",
        compile_limits=LIMITS if spec.compiled else None,
        output_files=OutputFiles(outputs, 10, 20),
        test_cases=cases,
    )
