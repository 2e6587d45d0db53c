"""Package requirements: the version grammar, names per installer kind, how pip and
npm are told what to install, and how their records of an install are read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codebeaker.runtimes.packages.requirements import (
    KINDS,
    MAX_NAME,
    NPM_PREFIX,
    PIP_REPORT,
    Constraint,
    Requirement,
    RequirementError,
    describe,
    parse_range,
    version_key,
)

PIP = KINDS["pip"]
NPM = KINDS["npm"]


def c(operator: str, version: str) -> Constraint:
    return Constraint(operator, version)


# The grammar.


@pytest.mark.parametrize("text", ["", "*", "  ", " * "])
def test_empty_and_star_allow_any_version(text: str) -> None:
    assert parse_range(text) == ()
    assert Requirement("x", parse_range(text)).allows("0.0.1")
    assert describe(parse_range(text)) == "any version"


def test_a_bare_version_means_equal() -> None:
    assert parse_range("1.3.0") == (c("==", "1.3.0"),)
    assert parse_range(" 2 ") == (c("==", "2"),)


@pytest.mark.parametrize("operator", ["==", ">=", "<=", ">", "<"])
def test_each_operator_is_read(operator: str) -> None:
    assert parse_range(f"{operator}1.2") == (c(operator, "1.2"),)
    assert parse_range(f"{operator} 1.2") == (c(operator, "1.2"),)  # a space between


def test_a_comma_list_is_every_constraint_sorted_and_deduplicated() -> None:
    # By version, lower bounds first, as people write a range.
    assert parse_range(">=1.2, <2") == (c(">=", "1.2"), c("<", "2"))
    assert parse_range("<2,>=1.2") == parse_range(">=1.2, <2")
    assert parse_range(">=1, >=1,<3") == (c(">=", "1"), c("<", "3"))
    assert describe(parse_range(">=1.2, <2")) == ">=1.2, <2"


@pytest.mark.parametrize(
    "text",
    [
        "!=1.0",
        "~=1.0",
        "^1.2.3",
        "~1.2",
        "=1.0",
        "=>1",
        ">=",
        "1.2,",
        ",1",
        "1..2",
        "1.2.",
        ".1",
        "1.2a1",
        "v1.2",
        "latest",
        "1.2.3.4.5.6.7",  # seven parts: six at most
        "1234567890",  # ten digits: nine at most
        "1 2",
        ">=1.2 <2",  # npm's spelling, not ours
    ],
)
def test_a_malformed_range_is_refused_with_the_grammar_in_the_message(text: str) -> None:
    with pytest.raises(RequirementError) as caught:
        parse_range(text)
    message = str(caught.value)
    assert "is not a version range" in message
    assert "==, >=, <=, >, <" in message  # what is allowed
    assert "e.g. >=1.2, <2" in message


def test_the_message_names_the_bad_part() -> None:
    with pytest.raises(RequirementError, match=r"'!=1\.1' must be an operator"):
        parse_range(">=1, !=1.1")


def test_a_requirement_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_range("nope")


def test_six_parts_and_nine_digits_are_accepted() -> None:
    assert parse_range("1.2.3.4.5.6") == (c("==", "1.2.3.4.5.6"),)
    assert parse_range("123456789") == (c("==", "123456789"),)


def test_version_key_drops_trailing_zeros_only() -> None:
    assert version_key("1.2") == version_key("1.2.0") == version_key("1.2.0.0") == (1, 2)
    assert version_key("1.0.2") == (1, 0, 2)
    assert version_key("0") == version_key("0.0") == (0,)
    assert version_key("10") == (10,)
    assert version_key("01.002") == (1, 2)


def test_version_key_reads_the_leading_numbers_of_an_installed_version() -> None:
    assert version_key("1.2.3rc1") == (1, 2, 3)
    assert version_key("2.0.0-beta.1") == (2,)
    assert version_key("4.17.21+local") == (4, 17, 21)


@pytest.mark.parametrize("text", ["", "v1", "rc1", "."])
def test_version_key_refuses_what_has_no_number_first(text: str) -> None:
    with pytest.raises(RequirementError, match="is not a version"):
        version_key(text)


def test_versions_compare_as_numbers_not_text() -> None:
    assert c(">", "1.9").allows("1.10")
    assert not c("<", "1.9").allows("1.10")
    assert c(">=", "2").allows("10.0")


@pytest.mark.parametrize(
    ("constraint", "version", "allowed"),
    [
        (c("==", "1.2"), "1.2.0", True),
        (c("==", "1.2.0"), "1.2", True),
        (c("==", "1.2"), "1.2.1", False),
        (c(">=", "1.2"), "1.2", True),
        (c(">=", "1.2"), "1.1.9", False),
        (c("<=", "1.2"), "1.2.0", True),
        (c("<=", "1.2"), "1.2.5", False),
        (c(">", "1.2"), "1.2.0", False),
        (c(">", "1.2"), "1.2.1", True),
        (c("<", "2"), "1.99.99", True),
        (c("<", "2"), "2.0", False),
        (c("<", "2"), "2.0.0rc1", False),  # a pre-release of 2 counts as 2
    ],
)
def test_constraint_allows(constraint: Constraint, version: str, allowed: bool) -> None:
    assert constraint.allows(version) is allowed


def test_a_requirement_needs_every_constraint() -> None:
    requirement = Requirement("x", parse_range(">=1.2, <2"))
    assert requirement.allows("1.5")
    assert not requirement.allows("2.0")
    assert not requirement.allows("1.1")
    assert str(requirement) == "x (>=1.2, <2)"
    assert str(Requirement("x")) == "x"


def test_a_constraint_prints_as_it_is_written() -> None:
    assert str(c(">=", "1.2")) == ">=1.2"


# Names per installer kind.


@pytest.mark.parametrize(
    ("name", "normalized"),
    [
        ("tabulate", "tabulate"),
        ("Requests", "requests"),
        ("Foo_Bar", "foo-bar"),
        ("foo.bar", "foo-bar"),
        ("foo--_.bar", "foo-bar"),
        ("zope.interface", "zope-interface"),
        ("A", "a"),
        ("x1", "x1"),
    ],
)
def test_pip_names_are_normalized_as_pep_503_says(name: str, normalized: str) -> None:
    assert PIP.check_name(name) == normalized


@pytest.mark.parametrize(
    "name", ["", "-foo", "foo-", "_foo", "foo.", "foo bar", "foo/bar", "föö", "foo\n", "@a/b"]
)
def test_invalid_pip_names_are_refused(name: str) -> None:
    with pytest.raises(RequirementError, match="is not a valid pip package name"):
        PIP.check_name(name)


@pytest.mark.parametrize(
    "name",
    ["left-pad", "lodash.merge", "@types/node", "@scope/name", "a~b", "@babel/core", "0x"],
)
def test_npm_names_are_kept_as_they_are(name: str) -> None:
    assert NPM.check_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "Left-Pad",  # npm names are lowercase
        ".hidden",
        "_private",
        "@scope",
        "@scope/",
        "@/name",
        "@Scope/name",
        "a/b",
        "@a/b/c",
        "left pad",
        "left-pad\n",
    ],
)
def test_invalid_npm_names_are_refused(name: str) -> None:
    with pytest.raises(RequirementError, match="is not a valid npm package name"):
        NPM.check_name(name)


@pytest.mark.parametrize("kind", ["pip", "npm"])
def test_a_name_longer_than_214_characters_is_refused(kind: str) -> None:
    assert KINDS[kind].check_name("a" * MAX_NAME) == "a" * MAX_NAME
    with pytest.raises(RequirementError) as caught:
        KINDS[kind].check_name("a" * (MAX_NAME + 1))
    assert str(caught.value) == f"{'a' * 64!r} is not a valid {kind} package name"  # cut short


# How each installer is told.


def test_pip_spelling() -> None:
    assert PIP.spell(Requirement("tabulate")) == "tabulate"
    assert PIP.spell(Requirement("tabulate", parse_range("0.9"))) == "tabulate==0.9"
    spelled = PIP.spell(Requirement("requests-toolbelt", parse_range(">=1.0, <2")))
    assert spelled == "requests-toolbelt>=1.0,<2"


def test_npm_spelling() -> None:
    assert NPM.spell(Requirement("left-pad")) == "left-pad"
    assert NPM.spell(Requirement("left-pad", parse_range("1.3.0"))) == "left-pad@1.3.0"
    assert NPM.spell(Requirement("@scope/name", parse_range("2.0.0"))) == "@scope/name@2.0.0"
    # npm joins comparators with a space (and), not a comma (which it does not know).
    spelled = NPM.spell(Requirement("left-pad", parse_range(">=1.2.0, <2.0.0")))
    assert spelled == "left-pad@>=1.2.0 <2.0.0"


@pytest.mark.parametrize(
    ("asked", "spelled"),
    [
        # npm reads a partial version as a whole range (`1.3` is any 1.3.x, `<=1.2`
        # anything below 1.3, `>1.2` nothing below 1.3): spelled in full, it means
        # what our grammar means.
        ("1.3", "left-pad@1.3.0"),
        ("<=1.2", "left-pad@<=1.2.0"),
        (">1.2", "left-pad@>1.2.0"),
        (">=1, <2", "left-pad@>=1.0.0 <2.0.0"),
        ("1.2.3.4", "left-pad@1.2.3.4"),  # more than three parts: left as asked
    ],
)
def test_npm_spells_partial_versions_in_full(asked: str, spelled: str) -> None:
    assert NPM.spell(Requirement("left-pad", parse_range(asked))) == spelled


# What each installer's record says it installed.


def test_pip_report_is_read_with_names_normalized(tmp_path: Path) -> None:
    report = {
        "version": "1",
        "install": [
            {"metadata": {"name": "tabulate", "version": "0.9.0"}},
            {"metadata": {"name": "Requests_Toolbelt", "version": "1.0.0"}},
            {"metadata": {"name": "zope.interface", "version": "6.1"}},
        ],
    }
    (tmp_path / PIP_REPORT).write_text(json.dumps(report))
    assert PIP.installed(tmp_path) == {
        "tabulate": "0.9.0",
        "requests-toolbelt": "1.0.0",
        "zope-interface": "6.1",
    }


def test_a_pip_report_without_installs_is_empty(tmp_path: Path) -> None:
    (tmp_path / PIP_REPORT).write_text(json.dumps({"version": "1"}))
    assert PIP.installed(tmp_path) == {}


def test_a_missing_or_broken_pip_report_raises(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        PIP.installed(tmp_path)
    (tmp_path / PIP_REPORT).write_text("{not json")
    with pytest.raises(ValueError):
        PIP.installed(tmp_path)
    (tmp_path / PIP_REPORT).write_text(json.dumps({"install": [{"name": "x"}]}))
    with pytest.raises(KeyError):
        PIP.installed(tmp_path)


def test_npm_lockfile_is_read_with_nested_and_scoped_paths(tmp_path: Path) -> None:
    lock = {
        "name": "codebeaker-packages",
        "lockfileVersion": 3,
        "packages": {
            "": {"name": "codebeaker-packages", "dependencies": {"left-pad": "1.3.0"}},
            "node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-x"},
            "node_modules/@scope/name": {"version": "2.0.0"},
            "node_modules/a": {"version": "1.0.0"},
            "node_modules/a/node_modules/b": {"version": "0.1.0"},
            "node_modules/@scope/name/node_modules/@other/dep": {"version": "3.1.4"},
            "node_modules/linked": {"link": True, "resolved": "../x"},
            "node_modules/odd": "not an entry",
            "lib/elsewhere": {"version": "9.9.9"},
        },
    }
    (tmp_path / NPM_PREFIX).mkdir()
    (tmp_path / NPM_PREFIX / "package-lock.json").write_text(json.dumps(lock))
    assert NPM.installed(tmp_path) == {
        "left-pad": "1.3.0",
        "@scope/name": "2.0.0",
        "a": "1.0.0",
        "a/node_modules/b": "0.1.0",
        "@scope/name/node_modules/@other/dep": "3.1.4",
        "linked": "",
    }


def test_an_npm_lockfile_without_packages_is_empty(tmp_path: Path) -> None:
    (tmp_path / NPM_PREFIX).mkdir()
    (tmp_path / NPM_PREFIX / "package-lock.json").write_text(json.dumps({"packages": None}))
    assert NPM.installed(tmp_path) == {}


def test_a_missing_npm_lockfile_raises(tmp_path: Path) -> None:
    (tmp_path / "package-lock.json").write_text("{}")  # not under the prefix: not npm's
    with pytest.raises(OSError):
        NPM.installed(tmp_path)
