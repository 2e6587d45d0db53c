"""The image builder's decisions, without Docker: what counts as a changed input,
which base image is chosen, and how the command line is read."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.images import (
    DEFAULT_BASE_IMAGE,
    INPUTS_LABEL,
    LOCAL_BASE_IMAGE,
    SUPERVISOR_DIR,
    VERSION_LABEL,
    BuildError,
    context_files,
    decide,
    inputs_hash,
    parse_args,
    parse_version,
    resolve_base_image,
    select,
    tail,
)

ARGS = {"BASE_IMAGE": "debian:bookworm-slim", "SUPERVISOR_IMAGE": "codebeaker/supervisor"}
PARENTS = ["sha256:base", "sha256:supervisor"]


def make_context(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


@pytest.fixture
def context(tmp_path: Path) -> Path:
    return make_context(
        tmp_path / "ctx",
        {"Dockerfile": b"FROM scratch\n", "spec.toml": b'id = "x"\n', "lib/a.txt": b"a"},
    )


def test_hash_is_stable_for_the_same_inputs(context: Path) -> None:
    assert inputs_hash(context, ARGS, PARENTS) == inputs_hash(context, ARGS, PARENTS)


def test_hash_ignores_location_mtimes_and_creation_order(context: Path, tmp_path: Path) -> None:
    files = {"lib/a.txt": b"a", "spec.toml": b'id = "x"\n', "Dockerfile": b"FROM scratch\n"}
    twin = make_context(tmp_path / "twin", files)
    (twin / "Dockerfile").touch()
    assert inputs_hash(twin, ARGS, PARENTS) == inputs_hash(context, ARGS, PARENTS)


def test_hash_changes_when_a_file_changes(context: Path) -> None:
    before = inputs_hash(context, ARGS, PARENTS)
    (context / "lib" / "a.txt").write_bytes(b"b")
    assert inputs_hash(context, ARGS, PARENTS) != before


def test_hash_changes_when_a_file_is_added_or_renamed(context: Path) -> None:
    before = inputs_hash(context, ARGS, PARENTS)
    (context / "new.txt").write_bytes(b"")
    added = inputs_hash(context, ARGS, PARENTS)
    (context / "new.txt").rename(context / "other.txt")
    assert len({before, added, inputs_hash(context, ARGS, PARENTS)}) == 3


def test_hash_changes_when_a_file_becomes_executable(context: Path) -> None:
    before = inputs_hash(context, ARGS, PARENTS)
    (context / "lib" / "a.txt").chmod(0o755)
    assert inputs_hash(context, ARGS, PARENTS) != before


def test_hash_does_not_let_names_and_contents_run_together(tmp_path: Path) -> None:
    one = make_context(tmp_path / "one", {"ab": b"c"})
    two = make_context(tmp_path / "two", {"a": b"bc"})
    assert inputs_hash(one, {}, []) != inputs_hash(two, {}, [])


def test_hash_changes_with_build_args_and_parents(context: Path) -> None:
    base = inputs_hash(context, ARGS, PARENTS)
    assert inputs_hash(context, {**ARGS, "BASE_IMAGE": "other"}, PARENTS) != base
    assert inputs_hash(context, {}, PARENTS) != base
    assert inputs_hash(context, ARGS, ["sha256:base", "sha256:newer"]) != base
    assert inputs_hash(context, ARGS, list(reversed(PARENTS))) != base


def test_context_files_are_sorted_relative_regular_files(context: Path) -> None:
    assert context_files(context) == [Path("Dockerfile"), Path("lib/a.txt"), Path("spec.toml")]


def test_decide() -> None:
    current = {INPUTS_LABEL: "h", VERSION_LABEL: "3.11.2"}
    assert decide(current, "h", wants_version=True, force=False) == "skip"
    assert decide(current, "h", wants_version=True, force=True) == "build"
    assert decide(current, "other", wants_version=True, force=False) == "build"
    assert decide({}, "h", wants_version=False, force=False) == "build"
    assert decide({INPUTS_LABEL: "h"}, "h", wants_version=True, force=False) == "label"
    assert decide({INPUTS_LABEL: "h"}, "h", wants_version=False, force=False) == "skip"


def test_parse_version() -> None:
    assert parse_version("\n  3.11.2 \n") == "3.11.2"
    assert parse_version("18.20.4\nnoise\n") == "18.20.4"
    with pytest.raises(BuildError):
        parse_version(" \n")
    with pytest.raises(BuildError):
        parse_version("x" * 100)


def test_tail_keeps_the_last_lines_without_colours() -> None:
    assert tail("a\nb\nc\n", lines=2) == "b\nc"
    assert tail("\x1b[91merror: x\n\x1b[0mdone") == "error: x\ndone"


def test_parse_args_defaults() -> None:
    options = parse_args(["build"], environ={})
    assert options.base_image is None
    assert options.languages == ()
    assert not options.force and not options.verbose
    assert options.supervisor_dir == SUPERVISOR_DIR


def test_parse_args_flags_and_environment(tmp_path: Path) -> None:
    env = {"CODEBEAKER_BASE_IMAGE": "from-env"}
    assert parse_args(["build"], environ=env).base_image == "from-env"
    flags = ["--base-image", "flag", "--language", "py", "--language", "js", "--force", "-v"]
    options = parse_args(["build", *flags, "--supervisor-dir", str(tmp_path)], environ=env)
    assert options.base_image == "flag"
    assert options.languages == ("py", "js")
    assert options.force and options.verbose
    assert options.supervisor_dir == tmp_path


@pytest.mark.parametrize("argv", [[], ["bake"], ["build", "--nope"]])
def test_parse_args_rejects_bad_command_lines(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_args(argv, environ={})
    assert raised.value.code == 2


def test_select_resolves_aliases_and_rejects_unknown_languages() -> None:
    catalog = Catalog.load()
    assert [s.id for s in select(catalog, ["py", "python", "js"])] == ["javascript", "python"]
    assert select(catalog, []) == catalog.specs()
    with pytest.raises(BuildError, match="known languages"):
        select(catalog, ["cobol"])


class FakeEngine:
    def __init__(self, local: set[str], pullable: frozenset[str] = frozenset()) -> None:
        self.local = set(local)
        self.pullable = pullable
        self.calls: list[str] = []

    def image_id(self, image: str) -> str | None:
        return f"sha256:{image}" if image in self.local else None

    def pull(self, image: str) -> bool:
        self.calls.append(f"pull {image}")
        if image in self.pullable:
            self.local.add(image)
        return image in self.local

    def import_debian(self, tag: str) -> None:
        self.calls.append(f"import {tag}")
        self.local.add(tag)


def test_base_image_prefers_an_explicit_one() -> None:
    engine = FakeEngine({"mine", DEFAULT_BASE_IMAGE})
    assert resolve_base_image(engine, "mine")[0] == "mine"
    assert engine.calls == []


def test_base_image_explicit_but_missing_is_an_error() -> None:
    with pytest.raises(BuildError, match="could not be pulled"):
        resolve_base_image(FakeEngine(set()), "missing")


def test_base_image_uses_local_debian_then_our_own() -> None:
    assert resolve_base_image(FakeEngine({DEFAULT_BASE_IMAGE, LOCAL_BASE_IMAGE}), None)[0] == (
        DEFAULT_BASE_IMAGE
    )
    engine = FakeEngine({LOCAL_BASE_IMAGE})
    assert resolve_base_image(engine, None)[0] == LOCAL_BASE_IMAGE
    assert engine.calls == []


def test_base_image_pulls_before_building() -> None:
    engine = FakeEngine(set(), pullable=frozenset({DEFAULT_BASE_IMAGE}))
    assert resolve_base_image(engine, None)[0] == DEFAULT_BASE_IMAGE
    assert engine.calls == [f"pull {DEFAULT_BASE_IMAGE}"]


def test_base_image_is_built_when_nothing_else_works() -> None:
    engine = FakeEngine(set())
    assert resolve_base_image(engine, None)[0] == LOCAL_BASE_IMAGE
    assert engine.calls == [f"pull {DEFAULT_BASE_IMAGE}", f"import {LOCAL_BASE_IMAGE}"]
