"""A language with several versions: spec.toml's [versions.NAME] tables, the catalog's
runtimes, version selection (exact, prefix, default, unknown) and version aliases."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog, load_language, version_aliases
from codebeaker.runtimes.docker.labels import ImageNames, image_for, installer_image_for
from codebeaker.runtimes.errors import Reason, UnknownVersion

TOY = """\
id = "toy"
name = "Toy"
aliases = ["toy1"]
file_name = "main.toy"
warm = true
run = ["toy1", "{entrypoint}"]
version_command = ["toy1", "-v"]

[env]
TOY_HOME = "/opt/toy"
TOY_MODE = "fast"
"""
OLD = """
[versions.old]
suite = "bookworm"
env = { TOY_MODE = "compatible" }
"""
DOCKERFILE = "ARG BASE_IMAGE\nARG SUPERVISOR_IMAGE\nFROM ${BASE_IMAGE}\n"


def toy(root: Path, spec: str = TOY + OLD) -> Path:
    directory = root / "toy"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spec.toml").write_text(spec)
    (directory / "Dockerfile").write_text(DOCKERFILE)
    return directory


def toy_catalog(tmp_path: Path, versions: dict[str, str]) -> Catalog:
    return Catalog(load_language(toy(tmp_path))).with_versions(versions)


def test_a_versions_table_adds_a_runtime_beside_the_default(tmp_path: Path) -> None:
    default, old = load_language(toy(tmp_path))
    assert (default.key, default.is_default, default.suite) == ("toy", True, "")
    assert (old.id, old.key, old.variant, old.suite) == ("toy", "toy-old", "old", "bookworm")
    assert not old.is_default
    assert old.warm is False  # only a default version is kept started
    assert dict(old.env) == {"TOY_HOME": "/opt/toy", "TOY_MODE": "compatible"}
    assert old.directory == default.directory == tmp_path / "toy"  # the same Dockerfile
    assert old.run == default.run and old.aliases == default.aliases


def test_each_version_has_its_own_images(tmp_path: Path) -> None:
    default, old = load_language(toy(tmp_path))
    assert image_for(default) == "codebeaker/toy"
    assert image_for(old) == "codebeaker/toy-old"
    assert (
        installer_image_for(old, ImageNames(tag="2026.12"))
        == "codebeaker/toy-old-installer:2026.12"
    )


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ('[versions.old]\nenv = { A = "1" }\n', "the field suite is missing"),
        ('[versions.old]\nsuite = "bookworm"\nrun = ["x"]\n', "unknown field 'run'"),
        ('[versions."Old Toy"]\nsuite = "bookworm"\n', "lowercase letters and digits"),
        ('[versions.old]\nsuite = "bookworm"\nfolder = "old"\n', "unknown field 'folder'"),
        ('[versions.old]\nsuite = "bookworm"\nenv = "A=1"\n', "env must be a table"),
        ('versions = ["old"]\n', "versions must be tables"),
    ],
)
def test_a_malformed_versions_table_names_what_is_wrong(
    tmp_path: Path, table: str, problem: str
) -> None:
    spec = TOY.replace("[env]", table + "\n[env]") if table.startswith("versions") else TOY + table
    with pytest.raises(ValueError, match=problem):
        load_language(toy(tmp_path, spec))


def test_a_version_key_may_not_take_another_runtimes_name(tmp_path: Path) -> None:
    clash = toy(tmp_path / "b", TOY.replace('"toy"', '"toy-old"').replace("toy1", "toy2"))
    (clash.parent / "toy-old").mkdir()
    clash.rename(clash.parent / "toy-old")
    other = load_language(clash.parent / "toy-old")
    with pytest.raises(ValueError, match="'toy-old' is already the name"):
        Catalog([*load_language(toy(tmp_path)), *other])


def test_the_catalog_lists_languages_once_and_runtimes_per_version(tmp_path: Path) -> None:
    catalog = toy_catalog(tmp_path, {"toy": "2.4.1", "toy-old": "1.9.3"})
    assert [s.key for s in catalog.specs()] == ["toy"]
    assert [s.key for s in catalog.runtimes()] == ["toy", "toy-old"]
    assert [s.version for s in catalog.versions("toy")] == ["2.4.1", "1.9.3"]
    assert catalog.resolve("TOY1").key == "toy"
    assert [s.key for s in catalog.only(["toy1"]).runtimes()] == ["toy", "toy-old"]


@pytest.mark.parametrize(
    ("asked", "key"),
    [
        ("", "toy"),  # unset: the default
        ("2.4.1", "toy"),  # exact
        ("1.9.3", "toy-old"),
        ("1.9", "toy-old"),  # a prefix of whole parts
        ("1", "toy-old"),
        (" 1.9 ", "toy-old"),
        ("2", "toy"),
    ],
)
def test_a_version_is_selected_exactly_or_by_prefix(tmp_path: Path, asked: str, key: str) -> None:
    catalog = toy_catalog(tmp_path, {"toy": "2.4.1", "toy-old": "1.9.3"})
    chosen = catalog.select("toy", asked)
    assert chosen.key == key


def test_a_prefix_several_versions_share_takes_the_default_else_the_newest(tmp_path: Path) -> None:
    shared = toy_catalog(tmp_path / "a", {"toy": "3.13.5", "toy-old": "3.11.2"})
    assert shared.select("toy", "3").key == "toy"
    older_default = toy_catalog(tmp_path / "b", {"toy": "1.19.8", "toy-old": "1.24.4"})
    assert older_default.select("toy", "1").key == "toy"
    three = Catalog(
        [
            *load_language(toy(tmp_path / "c", TOY + OLD + '[versions.older]\nsuite = "buster"\n')),
        ]
    ).with_versions({"toy": "4.0.0", "toy-old": "3.10.1", "toy-older": "3.9.7"})
    assert three.select("toy", "3").key == "toy-old"  # the newest 3 (the default is 4)


@pytest.mark.parametrize("asked", ["3.1", "4", "2.4.10", "latest", "1.9.3.0"])
def test_an_unknown_version_is_refused_listing_the_versions(tmp_path: Path, asked: str) -> None:
    catalog = toy_catalog(tmp_path, {"toy": "2.4.1", "toy-old": "1.9.3"})
    with pytest.raises(UnknownVersion) as refused:
        catalog.select("toy", asked, "spec.language", "spec.version")
    assert refused.value.field == "spec.version"
    assert refused.value.reason == Reason.VERSION_UNAVAILABLE
    assert f"toy {asked!r} is not available" in refused.value.problem
    assert "this server has 2.4.1, 1.9.3" in refused.value.problem
    assert "such as '2.4'" in refused.value.problem


def test_versions_not_read_yet(tmp_path: Path) -> None:
    single = Catalog(load_language(toy(tmp_path / "a", TOY)))
    assert single.select("toy", "9.9").key == "toy"  # the one there is, as before
    several = Catalog(load_language(toy(tmp_path / "b")))
    with pytest.raises(UnknownVersion, match="not read yet"):
        several.select("toy", "2.4")
    assert several.select("toy", "").key == "toy"


def test_version_aliases_are_the_prefixes_that_select_a_version(tmp_path: Path) -> None:
    catalog = toy_catalog(tmp_path, {"toy": "3.13.5", "toy-old": "3.11.2"})
    default, old = catalog.versions("toy")
    assert version_aliases(default, catalog.versions("toy")) == ["3.13", "3"]
    assert version_aliases(old, catalog.versions("toy")) == ["3.11"]
    for spec in (default, old):
        for alias in version_aliases(spec, catalog.versions("toy")):
            assert catalog.select("toy", alias) is spec


def test_the_built_in_second_versions_are_bookworms() -> None:
    catalog = Catalog.load()
    second = {s.id: s for s in catalog.runtimes() if not s.is_default}
    assert sorted(second) == [
        "c", "clojure", "commonlisp", "cpp", "csharp", "d", "elixir", "erlang", "fortran",
        "go", "haskell", "java", "javascript", "ocaml", "octave", "perl", "php", "prolog",
        "python", "r", "raku", "ruby", "rust", "sql",
    ]  # fmt: skip
    for spec in second.values():
        assert (spec.variant, spec.suite, spec.key) == ("bookworm",) * 2 + (f"{spec.id}-bookworm",)
    # What differs per suite is in a folder named after it, which the Dockerfile takes
    # by DEBIAN_SUITE: Python's stand-ins, JavaScript's npm lock.
    for language, name in (("python", "stand-ins.control"), ("javascript", "package-lock.json")):
        folder = second[language].directory
        assert (folder / "trixie" / name).is_file() and (folder / "bookworm" / name).is_file()
    assert all(s.is_default for s in catalog.specs())
