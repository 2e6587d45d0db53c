"""Request validation: every bad program, path, output file or test case is
INVALID_ARGUMENT naming its field, before anything starts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from codebeaker.runtimes.catalog import Catalog, version_matches
from codebeaker.runtimes.errors import InvalidRequest
from codebeaker.runtimes.limits import DEFAULT_POLICY
from codebeaker.runtimes.model import Comparison, TestCase
from codebeaker.server.requests import RequestRules, build_job
from codebeaker.v1 import execution_pb2 as pb

RULES = RequestRules(
    catalog=Catalog.load(), policy=DEFAULT_POLICY, max_source=1000, max_stdin=100, max_files=4
)


def files(*paths: str) -> list[pb.File]:
    return [pb.File(path=path, content=b"x") for path in paths]


def refused(**fields: object) -> InvalidRequest:
    spec = pb.ExecutionSpec(language=str(fields.pop("language", "python")), **fields)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest) as caught:
        build_job(spec, RULES)
    return caught.value


@pytest.mark.parametrize(
    ("paths", "field", "words"),
    [
        (["../x.py"], "spec.files[0].path", "inside the workspace"),
        (["a/../../x.py"], "spec.files[0].path", "inside the workspace"),
        (["/etc/x.py"], "spec.files[0].path", "relative"),
        (["a\x00b.py"], "spec.files[0].path", "control characters"),
        (["main.py", "./main.py"], "spec.files[1].path", "duplicate"),
        (["a/b.py", "a//b.py"], "spec.files[1].path", "duplicate"),
        (["lib", "lib/x.py"], "spec.files[1].path", "folder"),
        (["lib/x.py", "lib"], "spec.files[1].path", "folder"),
        (["x" * 300], "spec.files[0].path", "longer than"),
        ([""], "spec.files[0].path", "empty"),
        (["a.py", "b.py", "c.py", "d.py", "e.py"], "spec.files", "maximum"),
    ],
)
def test_bad_file_paths_name_the_file(paths: list[str], field: str, words: str) -> None:
    error = refused(files=files(*paths))
    assert error.field == field
    assert words in str(error)


def test_total_size_of_files_is_bounded() -> None:
    error = refused(
        files=[pb.File(path="a.py", content=b"x" * 600), pb.File(path="b.py", content=b"x" * 600)]
    )
    assert error.field == "spec.files"


def test_entrypoint_must_be_one_of_the_files() -> None:
    error = refused(files=files("a.py"), entrypoint="b.py")
    assert error.field == "spec.entrypoint"


@pytest.mark.parametrize(
    ("patterns", "field"),
    [
        (["../out.txt"], "spec.output_files[0]"),
        (["/tmp/out.txt"], "spec.output_files[0]"),
        (["ok.txt", "./ok.txt"], "spec.output_files"),
        ([f"f{n}" for n in range(33)], "spec.output_files"),
    ],
)
def test_bad_output_files_are_refused(patterns: list[str], field: str) -> None:
    error = refused(source=b"pass", output_files=patterns)
    assert error.field == field


def test_test_cases_exclude_stdin_and_are_bounded() -> None:
    case = pb.TestCase(stdin=b"1")
    assert refused(source=b"pass", stdin=b"x", test_cases=[case]).field == "spec.stdin"
    big = pb.TestCase(stdin=b"x" * 60, expected_stdout=b"y" * 60)
    assert refused(source=b"pass", test_cases=[big]).field == "spec.test_cases"
    many = [case] * 257
    assert refused(source=b"pass", test_cases=many).field == "spec.test_cases"


def test_test_cases_keep_expectations_and_comparisons() -> None:
    spec = pb.ExecutionSpec(
        language="python",
        source=b"pass",
        test_cases=[
            pb.TestCase(stdin=b"1"),
            pb.TestCase(
                expected_stdout=b"",
                comparison=pb.COMPARISON_IGNORE_TRAILING_WHITESPACE,
            ),
        ],
    )
    job = build_job(spec, RULES)
    assert job.test_cases == (
        TestCase(b"1", None, Comparison.EXACT),
        TestCase(b"", b"", Comparison.IGNORE_TRAILING_WHITESPACE),
    )


def test_compile_limits_only_for_compiled_languages_and_only_their_own() -> None:
    limits = pb.ResourceLimits(max_processes=3)
    assert refused(language="c", source=b"x", compile_limits=limits).field == (
        "spec.compile_limits.max_processes"
    )
    job = build_job(
        pb.ExecutionSpec(
            language="c",
            source=b"int main(void){}",
            limits=pb.ResourceLimits(memory_bytes=64 << 20),
            compile_limits=pb.ResourceLimits(max_output_bytes=4096),
        ),
        RULES,
    )
    assert job.compile_limits is not None
    assert job.compile_limits.max_output_bytes == 4096
    assert job.compile_limits.memory_bytes == 64 << 20
    assert job.compile_argv()[0] == "gcc" and "main.c" in job.compile_argv()
    interpreted = build_job(pb.ExecutionSpec(language="python", source=b"pass"), RULES)
    assert interpreted.compile_limits is None and interpreted.compile_argv() == ()


def test_compile_memory_of_its_own_unless_the_sandbox_cannot_resize() -> None:
    spec = pb.ExecutionSpec(
        language="c",
        source=b"int main(void){}",
        limits=pb.ResourceLimits(memory_bytes=64 << 20),
        compile_limits=pb.ResourceLimits(memory_bytes=512 << 20),
    )
    job = build_job(spec, RULES)
    assert job.compile_limits is not None and job.compile_limits.memory_bytes == 512 << 20
    assert job.limits.memory_bytes == 64 << 20
    gvisor = replace(RULES, fixed_memory_languages=frozenset({"c"}))
    with pytest.raises(InvalidRequest) as caught:
        build_job(spec, gvisor)
    assert caught.value.field == "spec.compile_limits.memory_bytes"
    assert "gVisor" in str(caught.value)


@pytest.mark.parametrize(
    ("source", "name"),
    [
        (
            b"import java.util.*;\n\npublic class Solution {\n"
            b"  public static void main(String[] a) {}\n}\n",
            "Solution.java",
        ),
        (
            b"class Helper {}\npublic final class Judge {\n  public static class Inner {}\n}\n",
            "Judge.java",
        ),
        (b"public record Point(int x, int y) {}\n", "Point.java"),
        (b"class Main { public static void main(String[] a) {} }\n", "Main.java"),
        (b"// no class at all\n", "Main.java"),
    ],
)
def test_a_java_program_is_named_after_its_public_class(source: bytes, name: str) -> None:
    job = build_job(pb.ExecutionSpec(language="java", source=source), RULES)
    assert job.entrypoint == name and [f.path for f in job.files] == [name]
    assert job.language.command(job.entrypoint, [])[-1] == name.removesuffix(".java")


def test_a_named_entrypoint_wins_over_the_public_class() -> None:
    source = b"public class Solution {}\n"
    spec = pb.ExecutionSpec(language="java", source=source, entrypoint="Solution2.java")
    assert build_job(spec, RULES).entrypoint == "Solution2.java"
    assert build_job(pb.ExecutionSpec(language="python", source=source), RULES).entrypoint == (
        "main.py"
    )


@pytest.mark.parametrize(
    ("asked", "version", "matches"),
    [
        ("3.13.5", "3.13.5", True),
        ("3.13", "3.13.5", True),
        ("3", "3.13.5", True),
        (" 3.13 ", "3.13.5", True),
        ("3.1", "3.13.5", False),
        ("3.13.", "3.13.5", False),
        ("3.11", "3.13.5", False),
        ("", "3.13.5", False),
        ("27.3", "27.3.4.1", True),
    ],
)
def test_a_version_is_named_exactly_or_by_a_prefix_of_whole_parts(
    asked: str, version: str, matches: bool
) -> None:
    assert version_matches(asked, version) is matches


def test_version_selection_takes_the_default_a_prefix_or_refuses_listing_what_there_is() -> None:
    catalog = Catalog.load().with_versions({"python": "3.13.5"})
    rules = replace(RULES, catalog=catalog)
    for asked in ("", "3", "3.13", "3.13.5"):
        spec = pb.ExecutionSpec(language="python", source=b"print(1)", version=asked)
        assert build_job(spec, rules).language.version == "3.13.5"
    with pytest.raises(InvalidRequest) as caught:
        build_job(pb.ExecutionSpec(language="python", source=b"x", version="3.11"), rules)
    assert caught.value.field == "spec.version" and caught.value.reason == "VERSION_UNAVAILABLE"
    assert "3.13.5" in str(caught.value) and "'3.13'" in str(caught.value)
