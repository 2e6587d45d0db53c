"""The package allow-list: the TOML file read and checked against the real catalog,
and a request's packages checked against it."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.runtimes.packages.allowlist import MAX_PACKAGES, Allowlist, Asked
from codebeaker.runtimes.packages.requirements import Constraint, Requirement

GOOD = """
[python]
tabulate = "*"
Requests_Toolbelt = ">=1.0, <2"
six = "1.16.0"

[js]
left-pad = "1.3.0"
"@scope/name" = ">=2"
"""


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "packages.toml"
    path.write_text(text)
    return path


@pytest.fixture
def allowlist(tmp_path: Path, catalog: Catalog) -> Allowlist:
    return Allowlist.load(write(tmp_path, GOOD), catalog)


def python(catalog: Catalog) -> LanguageSpec:
    return catalog.resolve("python")


def check(
    allowlist: Allowlist, spec: LanguageSpec, *asked: tuple[str, str] | str
) -> tuple[Requirement, ...]:
    wanted: Iterable[Asked] = (
        Asked(item) if isinstance(item, str) else Asked(*item) for item in asked
    )
    return allowlist.check(spec, wanted, "spec.packages")


def refused(
    allowlist: Allowlist, spec: LanguageSpec, *asked: tuple[str, str] | str
) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        check(allowlist, spec, *asked)
    return caught.value


# The file.


def test_a_good_file_is_read_by_language_id_with_names_normalized(allowlist: Allowlist) -> None:
    assert set(allowlist.languages) == {"python", "javascript"}  # "js" is javascript's alias
    assert dict(allowlist.allowed("python")) == {
        "tabulate": (),
        "requests-toolbelt": (Constraint(">=", "1.0"), Constraint("<", "2")),
        "six": (Constraint("==", "1.16.0"),),
    }
    assert dict(allowlist.allowed("javascript")) == {
        "left-pad": (Constraint("==", "1.3.0"),),
        "@scope/name": (Constraint(">=", "2"),),
    }
    assert dict(allowlist.allowed("ruby")) == {}


def test_the_loaded_list_is_read_only(allowlist: Allowlist) -> None:
    with pytest.raises(TypeError):
        allowlist.allowed("python")["numpy"] = ()  # type: ignore[index]
    with pytest.raises(TypeError):
        allowlist.languages["ruby"] = {}  # type: ignore[index]


def test_an_empty_file_allows_nothing(tmp_path: Path, catalog: Catalog) -> None:
    assert dict(Allowlist.load(write(tmp_path, ""), catalog).languages) == {}


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[no-such-language]\nx = "*"\n', r"\[no-such-language\]: no such language on this server"),
        ('[c]\nx = "*"\n', r"\[c\]: c has no package installer"),
        ('[gcc]\nx = "*"\n', r"\[gcc\]: c has no package installer"),  # an alias of c
        ('python = "tabulate"\n', r'\[python\] must be a table of package = "versions"'),
        ("[python]\ntabulate = 1\n", r"\[python\] tabulate: the versions must be a string"),
        ('[python]\ntabulate = ["1"]\n', r"\[python\] tabulate: the versions must be a string"),
        ('[python]\ntabulate = "~=1.0"\n', r"\[python\] tabulate: '~=1.0' is not a version range"),
        ('[python]\n"bad name" = "*"\n', r"\[python\] bad name: 'bad name' is not a valid pip"),
        ('[javascript]\nLeftPad = "*"\n', r"\[javascript\] LeftPad: 'LeftPad' is not a valid npm"),
        ("[python\n", r"packages\.toml: "),  # not TOML
    ],
)
def test_a_bad_file_is_a_value_error_naming_the_file_and_the_entry(
    tmp_path: Path, catalog: Catalog, text: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=problem) as caught:
        Allowlist.load(path, catalog)
    assert str(caught.value).startswith(f"{path}: ")


def test_a_missing_file_is_a_value_error_naming_it(tmp_path: Path, catalog: Catalog) -> None:
    path = tmp_path / "absent.toml"
    with pytest.raises(ValueError, match=r"absent\.toml") as caught:
        Allowlist.load(path, catalog)
    assert str(caught.value).startswith(f"{path}: ")


# A request's packages.


def test_no_packages_need_no_list(catalog: Catalog) -> None:
    assert check(Allowlist(), python(catalog)) == ()
    assert check(Allowlist(), catalog.resolve("c")) == ()  # no installer, nothing asked


def test_allowed_packages_become_sorted_requirements(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    requirements = check(allowlist, python(catalog), "tabulate", ("Six", "1.16.0"))
    assert requirements == (
        Requirement("six", (Constraint("==", "1.16.0"),)),
        Requirement("tabulate", ()),
    )


def test_an_unknown_package_is_not_allowed_naming_it(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    error = refused(allowlist, python(catalog), "numpy")
    assert error.field == "spec.packages[0]"
    assert error.reason == Reason.PACKAGE_NOT_ALLOWED
    assert "'numpy'" in error.problem
    assert "requests-toolbelt, six, tabulate" in error.problem  # what is allowed


def test_the_field_indexes_the_offending_package(allowlist: Allowlist, catalog: Catalog) -> None:
    error = refused(allowlist, python(catalog), "tabulate", "six", "numpy")
    assert error.field == "spec.packages[2]"
    assert str(error).startswith("spec.packages[2]: package 'numpy'")


def test_without_a_list_every_package_is_not_allowed(catalog: Catalog) -> None:
    error = refused(Allowlist(), python(catalog), "tabulate")
    assert error.reason == Reason.PACKAGE_NOT_ALLOWED
    assert "(allowed: none)" in error.problem


def test_another_languages_list_does_not_count(allowlist: Allowlist, catalog: Catalog) -> None:
    error = refused(allowlist, catalog.resolve("javascript"), "tabulate")
    assert error.reason == Reason.PACKAGE_NOT_ALLOWED
    assert "for javascript" in error.problem


def test_an_exact_version_outside_the_range_is_not_allowed(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    error = refused(allowlist, python(catalog), ("requests-toolbelt", "2.0"))
    assert (error.field, error.reason) == ("spec.packages[0]", Reason.PACKAGE_NOT_ALLOWED)
    assert "requests-toolbelt 2.0 is not allowed here (allowed: >=1.0, <2)" in error.problem
    error = refused(allowlist, python(catalog), ("six", "1.15"))
    assert error.reason == Reason.PACKAGE_NOT_ALLOWED


def test_an_exact_version_inside_the_range_is_allowed(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    (requirement,) = check(allowlist, python(catalog), ("requests-toolbelt", "1.0.0"))
    assert requirement.allows("1.0") and not requirement.allows("1.0.1")
    (six,) = check(allowlist, python(catalog), ("six", "==1.16"))  # 1.16 is 1.16.0
    assert six.allows("1.16.0")


@pytest.mark.parametrize("version", ["~=1.0", "latest", ">=1,", "1.0a1"])
def test_a_malformed_version_is_invalid(
    allowlist: Allowlist, catalog: Catalog, version: str
) -> None:
    error = refused(allowlist, python(catalog), "tabulate", ("six", version))
    assert (error.field, error.reason) == ("spec.packages[1]", Reason.VALUE_INVALID)
    assert "is not a version range" in error.problem


def test_a_malformed_name_is_invalid(allowlist: Allowlist, catalog: Catalog) -> None:
    error = refused(allowlist, python(catalog), "tab ulate")
    assert (error.field, error.reason) == ("spec.packages[0]", Reason.VALUE_INVALID)
    assert "not a valid pip package name" in error.problem


@pytest.mark.parametrize("second", ["tabulate", "Tabulate", "TABULATE"])
def test_a_package_asked_twice_is_invalid(
    allowlist: Allowlist, catalog: Catalog, second: str
) -> None:
    error = refused(allowlist, python(catalog), "tabulate", (second, "0.9"))
    assert (error.field, error.reason) == ("spec.packages[1]", Reason.VALUE_INVALID)
    assert "asked for twice" in error.problem


def test_spellings_that_normalize_alike_are_one_package(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    (requirement,) = check(allowlist, python(catalog), "Requests_Toolbelt")
    assert requirement.name == "requests-toolbelt"
    error = refused(allowlist, python(catalog), "requests.toolbelt", "Requests_Toolbelt")
    assert (error.field, error.reason) == ("spec.packages[1]", Reason.VALUE_INVALID)
    assert "'Requests_Toolbelt' is asked for twice" in error.problem


def test_foo_bar_twice_in_two_spellings(tmp_path: Path, catalog: Catalog) -> None:
    allowlist = Allowlist.load(write(tmp_path, '[python]\nfoo-bar = "*"\n'), catalog)
    error = refused(allowlist, python(catalog), "Foo_Bar", "foo-bar")
    assert (error.field, error.reason) == ("spec.packages[1]", Reason.VALUE_INVALID)


def test_more_than_32_packages_are_too_many(allowlist: Allowlist, catalog: Catalog) -> None:
    error = refused(allowlist, python(catalog), *[f"p{i}" for i in range(MAX_PACKAGES + 1)])
    assert (error.field, error.reason) == ("spec.packages", Reason.TOO_MANY)
    assert "33 packages is above the maximum 32" in error.problem


def test_32_packages_are_checked_one_by_one(tmp_path: Path, catalog: Catalog) -> None:
    names = [f"p{i}" for i in range(MAX_PACKAGES)]
    text = "[python]\n" + "".join(f'{name} = "*"\n' for name in names)
    allowlist = Allowlist.load(write(tmp_path, text), catalog)
    assert len(check(allowlist, python(catalog), *names)) == MAX_PACKAGES


def test_a_language_without_installer_cannot_ask(allowlist: Allowlist, catalog: Catalog) -> None:
    error = refused(allowlist, catalog.resolve("c"), "tabulate")
    assert (error.field, error.reason) == ("spec.packages", Reason.FIELD_UNSUPPORTED)
    assert "c programs cannot ask for packages" in error.problem


def test_a_requested_range_is_narrowed_by_the_lists(allowlist: Allowlist, catalog: Catalog) -> None:
    (requirement,) = check(allowlist, python(catalog), ("requests-toolbelt", ">=1.5"))
    assert requirement.constraints == (
        Constraint(">=", "1.0"),
        Constraint(">=", "1.5"),
        Constraint("<", "2"),
    )
    assert requirement.allows("1.6")
    assert not requirement.allows("1.4")  # the request's bound
    assert not requirement.allows("2.1")  # the list's bound


def test_an_unversioned_request_gets_the_lists_range(
    allowlist: Allowlist, catalog: Catalog
) -> None:
    (requirement,) = check(allowlist, python(catalog), ("requests-toolbelt", ""))
    assert requirement.constraints == (Constraint(">=", "1.0"), Constraint("<", "2"))


def test_npm_names_are_checked_as_npm_names(allowlist: Allowlist, catalog: Catalog) -> None:
    spec = catalog.resolve("javascript")
    requirements = check(allowlist, spec, ("@scope/name", "2.1.0"), "left-pad")
    assert [r.name for r in requirements] == ["@scope/name", "left-pad"]
    error = refused(allowlist, spec, "Left-Pad")  # npm does not fold case
    assert error.reason == Reason.VALUE_INVALID


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[python]\nFoo_Bar = "*"\nfoo-bar = "1.0"\n', "listed twice (as foo-bar)"),
        ('[python]\nsix = "*"\n[py]\nsix = "1.0"\n', "python has a table already"),
    ],
)
def test_one_package_or_language_listed_twice_is_refused(
    tmp_path: Path, catalog: Catalog, text: str, problem: str
) -> None:
    path = tmp_path / "allow.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        Allowlist.load(path, catalog)
    assert str(path) in str(caught.value)
