"""The image builder's decisions, without Docker: what counts as a changed input,
which base image is chosen, how the command line is read and what a run reports."""

from __future__ import annotations

import argparse
import re
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

import pytest

from codebeaker.runtimes.catalog import PACKAGES_DOCKERFILE, Catalog
from codebeaker.runtimes.docker import images
from codebeaker.runtimes.docker.buildcontext import (
    context_files,
    ignore_rules,
    ignored,
    inputs_hash,
)
from codebeaker.runtimes.docker.images import (
    DEBIAN_SOURCES,
    DEBIAN_SUITE,
    DEFAULT_BASE_IMAGE,
    LOCAL_BASE_IMAGE,
    SUPERVISOR_DIR,
    SUPERVISOR_IMAGE,
    BuildError,
    Docker,
    Options,
    Tally,
    Target,
    add_images_command,
    build,
    debian_sources,
    decide,
    declares_arg,
    extra_ca_certs,
    options_from,
    parse_args,
    parse_packages,
    parse_version,
    pull_candidate,
    resolve_base_image,
    run_build,
    select,
    tail,
)
from codebeaker.runtimes.docker.labels import (
    INPUTS_LABEL,
    PACKAGES_LABEL,
    VERSION_LABEL,
    ImageNames,
    image_for,
    packages_from_label,
)

ARGS = {"BASE_IMAGE": "debian:trixie-slim", "SUPERVISOR_IMAGE": "codebeaker/supervisor"}
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


def test_hash_changes_with_a_dockerfile_from_outside_the_context(
    context: Path, tmp_path: Path
) -> None:
    shared = tmp_path / "Dockerfile"
    shared.write_text("FROM scratch\n")
    first = inputs_hash(context, ARGS, PARENTS, shared)
    assert first != inputs_hash(context, ARGS, PARENTS)
    shared.write_text("FROM scratch\nLABEL x=1\n")
    assert inputs_hash(context, ARGS, PARENTS, shared) != first


def test_a_folder_without_a_dockerfile_is_built_from_the_shared_one() -> None:
    docker = FakeDocker()
    assert build(Options(languages=("lua", "bash", "go")), docker, Catalog.load()) == 0
    lua = docker.targets["codebeaker/lua"]
    assert lua.dockerfile == PACKAGES_DOCKERFILE and lua.context.name == "lua"
    assert lua.build_args["DEBIAN_PACKAGES"] == "lua5.4"
    assert docker.targets["codebeaker/bash"].build_args["DEBIAN_PACKAGES"] == ""
    go = docker.targets["codebeaker/go"]  # its own Dockerfile, in its folder
    assert go.dockerfile is None and "DEBIAN_PACKAGES" not in go.build_args
    argv = Docker().build_argv(lua, {}, no_cache=False)
    assert argv[argv.index("--file") + 1] == str(PACKAGES_DOCKERFILE)
    assert argv[-1] == str(lua.context)
    assert "--file" not in Docker().build_argv(go, {}, no_cache=False)


def test_hash_changes_with_build_args_and_parents(context: Path) -> None:
    base = inputs_hash(context, ARGS, PARENTS)
    assert inputs_hash(context, {**ARGS, "BASE_IMAGE": "other"}, PARENTS) != base
    assert inputs_hash(context, {}, PARENTS) != base
    assert inputs_hash(context, ARGS, ["sha256:base", "sha256:newer"]) != base
    assert inputs_hash(context, ARGS, list(reversed(PARENTS))) != base


def test_context_files_are_sorted_relative_regular_files(context: Path) -> None:
    assert context_files(context) == [Path("Dockerfile"), Path("lib/a.txt"), Path("spec.toml")]


def test_context_files_honour_a_dockerignore_as_docker_does(tmp_path: Path) -> None:
    # What `COPY . /ctx/` saw of this very context under Docker 20.10's builder.
    names = ["Dockerfile", "a.c", "a.py", "a.md", "keep.md", "sub/b.c", "sub/b.py", "sub/b.md"]
    files = {name: b"" for name in [*names, "__pycache__/x.pyc", "sub/__pycache__/y.pyc"]}
    ignore = b"# comment\n**/*.py\n**/__pycache__\n*.md\n!keep.md\nDockerfile\n"
    ctx = make_context(tmp_path / "ctx", {**files, ".dockerignore": ignore})
    assert [p.as_posix() for p in context_files(ctx)] == [
        ".dockerignore",
        "Dockerfile",  # hidden from COPY when listed, yet it is the build: hashed
        "a.c",
        "keep.md",
        "sub/b.c",
        "sub/b.md",  # `*.md` matches at the top only
    ]


def test_hash_ignores_what_the_dockerignore_leaves_out(tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", {"Dockerfile": b"x", ".dockerignore": b"**/*.py\n"})
    before = inputs_hash(ctx, ARGS, PARENTS)
    (ctx / "pkg").mkdir()
    (ctx / "pkg" / "mod.py").write_bytes(b"print(1)")
    assert inputs_hash(ctx, ARGS, PARENTS) == before
    (ctx / ".dockerignore").write_bytes(b"")
    assert inputs_hash(ctx, ARGS, PARENTS) != before


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.py", "a.py", True),
        ("*.py", "sub/a.py", False),
        ("**/*.py", "sub/deep/a.py", True),
        ("**", "anything/at/all", True),
        ("sub", "sub/deep/a.c", True),
        ("sub/*", "sub/a.c", True),
        ("a?.c", "ab.c", True),
        ("a?.c", "a/.c", False),
        ("[ab].c", "b.c", True),
        ("[^ab].c", "b.c", False),
        ("a.c", "abc", False),
        ("/a.c", "a.c", True),
    ],
)
def test_dockerignore_patterns(pattern: str, path: str, hit: bool) -> None:
    assert ignored(ignore_rules([pattern]), PurePosixPath(path)) is hit


def test_supervisor_context_is_only_the_c_build() -> None:
    # The folder is a Python package too: its .py and .md files must not
    # reach Docker or the hash, or every Python edit would rebuild the images.
    sent = {p.as_posix() for p in context_files(SUPERVISOR_DIR)}
    assert "Dockerfile" in sent and "supervisor.c" in sent
    assert not {name for name in sent if name.endswith((".py", ".pyc", ".md"))}


def test_decide() -> None:
    current = {INPUTS_LABEL: "h", VERSION_LABEL: "3.11.2"}
    assert decide(current, "h", wants_version=True, force=False) == "skip"
    assert decide(current, "h", wants_version=True, force=True) == "build"
    assert decide(current, "other", wants_version=True, force=False) == "build"
    assert decide({}, "h", wants_version=False, force=False) == "build"
    assert decide({INPUTS_LABEL: "h"}, "h", wants_version=True, force=False) == "label"
    assert decide({INPUTS_LABEL: "h"}, "h", wants_version=False, force=False) == "skip"


def test_decide_relabels_an_image_that_lacks_its_packages() -> None:
    current = {INPUTS_LABEL: "h", VERSION_LABEL: "3.11.2"}
    assert decide(current, "h", True, False, wants_packages=True) == "label"
    assert decide({**current, PACKAGES_LABEL: "{}"}, "h", True, False, wants_packages=True) == (
        "skip"
    )
    assert decide(current, "h", True, False, wants_packages=False) == "skip"


def test_parse_packages_is_one_json_object_of_names_to_versions() -> None:
    assert parse_packages('{"pandas": "1.5.3", "numpy": "1.24.2"}\n') == (
        '{"numpy":"1.24.2","pandas":"1.5.3"}'
    )
    assert parse_packages("{}") == "{}"
    for bad in ("", "numpy 1.24.2", "[]", '{"numpy": 1}', '{"": "1"}', '{"x": "1\\n2"}'):
        with pytest.raises(BuildError):
            parse_packages(bad)
    with pytest.raises(BuildError, match="implausible"):
        parse_packages('{"numpy": "%s"}' % ("9" * 65))


def test_a_packages_label_reads_back_and_a_broken_one_is_empty() -> None:
    assert packages_from_label('{"numpy":"1.24.2"}') == {"numpy": "1.24.2"}
    for broken in ("", "{", "[1]", '"x"'):
        assert packages_from_label(broken) == {}
    assert packages_from_label('{"a": "1", "b": 2}') == {"a": "1"}


def test_extra_ca_certs_go_only_to_dockerfiles_that_declare_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    js = Catalog.load().resolve("js").directory / "Dockerfile"
    py = Catalog.load().resolve("py").directory / "Dockerfile"
    assert declares_arg(js, "EXTRA_CA_CERTS") and not declares_arg(py, "EXTRA_CA_CERTS")
    assert not declares_arg(tmp_path / "missing", "EXTRA_CA_CERTS")
    cas = tmp_path / "ca"
    monkeypatch.setattr(images, "LOCAL_CA_DIR", cas)
    assert extra_ca_certs() == ""
    (cas / "sub").mkdir(parents=True)
    (cas / "b.crt").write_text("-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\n")
    (cas / "sub" / "a.crt").write_text("A\n")
    (cas / "c.pem").write_text("not a .crt: not taken\n")
    assert extra_ca_certs() == "-----BEGIN CERTIFICATE-----\nB\n-----END CERTIFICATE-----\nA"
    docker = FakeDocker()
    assert build(Options(languages=("py", "js", "c")), docker, Catalog.load()) == 0
    assert docker.build_args["codebeaker/javascript"]["EXTRA_CA_CERTS"] == extra_ca_certs()
    assert "EXTRA_CA_CERTS" not in docker.build_args["codebeaker/python"]
    # DEBIAN_SUITE too, to the Dockerfiles that declare it (JavaScript's npm lock per suite).
    assert docker.build_args["codebeaker/javascript"]["DEBIAN_SUITE"] == DEBIAN_SUITE
    assert docker.build_args["codebeaker/javascript-bookworm"]["DEBIAN_SUITE"] == "bookworm"
    assert docker.build_args["codebeaker/python-bookworm"]["DEBIAN_SUITE"] == "bookworm"
    assert "DEBIAN_SUITE" not in docker.build_args["codebeaker/c-bookworm"]


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


def codebeaker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="codebeaker")
    add_images_command(parser.add_subparsers(metavar="COMMAND"))
    return parser


def test_images_build_subcommand(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("BASE_IMAGE", "IMAGE_PREFIX", "IMAGE_TAG", "LANGUAGES", "LANGUAGES_DIR"):
        monkeypatch.delenv(f"CODEBEAKER_{name}", raising=False)
    args = codebeaker_parser().parse_args(["images", "build"])
    assert args.handler is run_build
    assert options_from(args) == Options()
    flags = ["--base-image", "b", "--language", "py", "--force", "-v", "--supervisor-dir", "s"]
    args = codebeaker_parser().parse_args(["images", "build", *flags])
    assert options_from(args) == Options("b", ("py",), True, True, Path("s"), jobs=1)
    monkeypatch.setenv("CODEBEAKER_BASE_IMAGE", "from-env")
    assert options_from(codebeaker_parser().parse_args(["images", "build"])).base_image == (
        "from-env"
    )


@pytest.mark.parametrize("argv", [["images"], ["images", "bake"], ["images", "build", "x"]])
def test_images_subcommand_rejects_bad_command_lines(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        codebeaker_parser().parse_args(argv)
    assert raised.value.code == 2


def test_module_main_and_subcommand_share_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Options] = []

    def fake_run_build(args: argparse.Namespace) -> int:
        seen.append(options_from(args))
        return 7

    # The parser stores the handler when it is built: patch before building.
    monkeypatch.setattr(images, "run_build", fake_run_build)
    assert images.main(["build", "--language", "c"]) == 7
    assert seen == [parse_args(["build", "--language", "c"])]


def test_select_resolves_aliases_and_rejects_unknown_languages() -> None:
    catalog = Catalog.load()
    chosen = [s.key for s in select(catalog, ["py", "python", "js"])]
    assert chosen == ["javascript", "javascript-bookworm", "python", "python-bookworm"]
    assert select(catalog, []) == catalog.runtimes()
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

    def import_debian(self, tag: str, suite: str) -> None:
        self.calls.append(f"import {tag} {suite}")
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
    assert engine.calls == [f"pull {DEFAULT_BASE_IMAGE}", f"import {LOCAL_BASE_IMAGE} trixie"]


def test_the_base_is_debian_trixie() -> None:
    assert DEBIAN_SUITE == "trixie"
    assert DEFAULT_BASE_IMAGE == "debian:trixie-slim"
    assert LOCAL_BASE_IMAGE == "codebeaker/debian:trixie"
    assert DEBIAN_SOURCES == (
        "deb http://deb.debian.org/debian trixie main",
        "deb http://deb.debian.org/debian trixie-updates main",
        "deb http://deb.debian.org/debian-security trixie-security main",
    )


def test_the_base_suite_is_a_parameter() -> None:
    engine = FakeEngine(set())
    assert resolve_base_image(engine, None, "bookworm")[0] == "codebeaker/debian:bookworm"
    assert engine.calls == [
        "pull debian:bookworm-slim",
        "import codebeaker/debian:bookworm bookworm",
    ]
    assert resolve_base_image(FakeEngine({"debian:bookworm-slim"}), None, "bookworm") == (
        "debian:bookworm-slim",
        "local",
    )
    assert debian_sources("bookworm")[2] == (
        "deb http://deb.debian.org/debian-security bookworm-security main"
    )


def test_every_dockerfile_defaults_to_the_suite() -> None:
    dockerfiles = [
        SUPERVISOR_DIR / "Dockerfile",
        *{s.dockerfile for s in Catalog.load().specs()},
    ]
    assert PACKAGES_DOCKERFILE in dockerfiles
    for dockerfile in dockerfiles:
        declared = re.findall(r"^ARG BASE_IMAGE=(\S+)$", dockerfile.read_text(), re.MULTILINE)
        assert declared == [DEFAULT_BASE_IMAGE], dockerfile


class FakeDocker(Docker):
    """The image builder's view of Docker, in memory: images by name, with labels."""

    def __init__(self, broken: Sequence[str] = ()) -> None:
        super().__init__()
        self.broken = set(broken)
        self.images: dict[str, tuple[str, dict[str, str]]] = {
            DEFAULT_BASE_IMAGE: ("sha256:base", {}),
            pull_candidate("bookworm"): ("sha256:bookworm", {}),
        }
        self.builds: list[str] = []
        self.build_args: dict[str, Mapping[str, str]] = {}
        self.targets: dict[str, Target] = {}
        self.stages: dict[str, str] = {}
        self.removed: list[str] = []
        self.lock = threading.Lock()  # the builder runs several builds at once

    def check_engine(self) -> None:
        pass

    def image_id(self, image: str) -> str | None:
        found = self.images.get(image)
        return found[0] if found else None

    def labels(self, image: str) -> dict[str, str]:
        found = self.images.get(image)
        return dict(found[1]) if found else {}

    def pull(self, image: str) -> bool:
        return image in self.images

    def build(self, target: Target, labels: Mapping[str, str], no_cache: bool) -> None:
        if target.image in self.broken:
            raise BuildError(f"`docker build` of {target.image} failed")
        with self.lock:
            self.builds.append(target.image)
            self.build_args[target.image] = target.build_args
            self.targets[target.image] = target
            self.stages[target.image] = target.stage
            self.images[target.image] = (f"sha256:{len(self.builds)}", dict(labels))

    def run_in(self, image: str, command: Sequence[str]) -> str:
        if any("json" in part.lower() for part in command):  # a packages_command
            return '{"numpy": "1.24.2", "pandas": "1.5.3"}\n'
        return "1.0\n"

    def remove(self, image_id: str | None) -> None:
        if image_id:
            self.removed.append(image_id)

    def import_debian(self, tag: str, suite: str = DEBIAN_SUITE) -> None:
        raise AssertionError("the fake has a base image")


SUMMARY = re.compile(r"images: (.*) in \d+\.\d s")


def summary_of(out: str) -> str:
    found = SUMMARY.fullmatch(out.splitlines()[-1])
    assert found, out
    return found.group(1)


def test_tally_summary() -> None:
    tally = Tally(built=["a", "b"], current=["c"])
    assert tally.ok
    assert tally.summary(4.25) == "images: 3 ready (2 built, 1 up to date, 0 failed) in 4.2 s"
    tally.failed += ["codebeaker/go", "codebeaker/rust"]
    assert not tally.ok
    assert tally.summary(1) == (
        "images: 3 ready (2 built, 1 up to date, 2 failed: codebeaker/go, codebeaker/rust) in 1.0 s"
    )
    assert Tally(failed=[SUPERVISOR_IMAGE], not_attempted=12).summary(0) == (
        "images: 0 ready (0 built, 0 up to date, 1 failed: codebeaker/supervisor; "
        "12 not attempted) in 0.0 s"
    )


class MeetingDocker(FakeDocker):
    """A fake whose language builds each wait until `parties` of them run at once."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.meeting = threading.Barrier(parties, timeout=5)

    def build(self, target: Target, labels: Mapping[str, str], no_cache: bool) -> None:
        if target.image != SUPERVISOR_IMAGE and "version" not in str(labels):
            self.meeting.wait()  # BrokenBarrierError unless the others build meanwhile
        super().build(target, labels, no_cache)


def test_languages_build_at_once_with_numbered_progress(
    capsys: pytest.CaptureFixture[str],
) -> None:
    docker = MeetingDocker(parties=3)
    options = Options(languages=("c", "go", "rust"), jobs=3)
    assert build(options, docker, Catalog.load()) == 0
    out = capsys.readouterr().out
    # Each with its second version (bookworm's): six language images and the supervisor.
    assert sorted(re.findall(r"^\[(\d)/7\] ", out, re.M)) == [str(n) for n in range(1, 8)]
    assert summary_of(out) == "7 ready (7 built, 0 up to date, 0 failed)"


def test_jobs_are_parsed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODEBEAKER_LANGUAGES", raising=False)
    parsed = codebeaker_parser().parse_args(["images", "build", "-j", "5"])
    assert options_from(parsed).jobs == 5
    with pytest.raises(ValueError, match="--jobs must be at least 1"):
        options_from(codebeaker_parser().parse_args(["images", "build", "--jobs", "0"]))


def test_build_reports_each_image_and_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    docker, catalog = FakeDocker(), Catalog.load()
    options = Options(languages=("py", "c"))
    assert build(options, docker, catalog) == 0
    captured = capsys.readouterr()
    assert summary_of(captured.out) == "7 ready (7 built, 0 up to date, 0 failed)"
    # A language with an installer gets its Dockerfile's installer stage as a second
    # image; a second version (bookworm's) has images of its own.
    assert docker.stages == {
        SUPERVISOR_IMAGE: "",
        "codebeaker/c": "",
        "codebeaker/c-bookworm": "",
        "codebeaker/python": "",
        "codebeaker/python-installer": "installer",
        "codebeaker/python-bookworm": "",
        "codebeaker/python-bookworm-installer": "installer",
    }
    for image in (SUPERVISOR_IMAGE, "codebeaker/c", "codebeaker/python-bookworm"):
        assert f"building {image} ..." in captured.err
        assert re.search(rf"^\[\d+/7\] {image}: built in .* s", captured.out, re.M)
    # Each version on its own suite's base; the supervisor (static) on the default's.
    for image in (SUPERVISOR_IMAGE, "codebeaker/c", "codebeaker/python"):
        assert docker.build_args[image]["BASE_IMAGE"] == DEFAULT_BASE_IMAGE
    for image in ("codebeaker/c-bookworm", "codebeaker/python-bookworm-installer"):
        assert docker.build_args[image]["BASE_IMAGE"] == pull_candidate("bookworm")
    assert "codebeaker/python: built in" in captured.out
    assert "(version 1.0, 2 packages)" in captured.out
    assert docker.labels("codebeaker/python")[PACKAGES_LABEL] == (
        '{"numpy":"1.24.2","pandas":"1.5.3"}'
    )
    assert PACKAGES_LABEL not in docker.labels("codebeaker/c")
    # Nothing changed: nothing is built again.
    builds = len(docker.builds)
    assert build(options, docker, catalog) == 0
    captured = capsys.readouterr()
    assert len(docker.builds) == builds and "building" not in captured.err
    assert "codebeaker/c: up to date (version 1.0)" in captured.out
    assert summary_of(captured.out) == "7 ready (0 built, 7 up to date, 0 failed)"


def test_a_failed_language_is_named_and_fails_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    catalog = Catalog.load()
    docker = FakeDocker(broken=["codebeaker/c"])
    assert build(Options(languages=("c", "py", "js")), docker, catalog) == 1
    captured = capsys.readouterr()
    assert "codebeaker/c: FAILED: `docker build` of codebeaker/c failed" in captured.err
    assert summary_of(captured.out) == "10 ready (10 built, 0 up to date, 1 failed: codebeaker/c)"
    assert image_for(catalog.resolve("js")) in docker.builds  # the others still built


def test_a_failed_supervisor_stops_the_languages(capsys: pytest.CaptureFixture[str]) -> None:
    docker = FakeDocker(broken=[SUPERVISOR_IMAGE])
    assert build(Options(languages=("c", "py")), docker, Catalog.load()) == 1
    assert docker.builds == []
    assert summary_of(capsys.readouterr().out) == (
        "0 ready (0 built, 0 up to date, 1 failed: codebeaker/supervisor; 4 not attempted)"
    )


def test_errors_before_any_image_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    docker = FakeDocker()
    assert build(Options(base_image="missing"), docker, Catalog.load()) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: base image 'missing' is not on this machine")
    assert "images:" not in captured.out


def test_run_build_uses_the_real_docker_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[FakeDocker] = []

    def fake_docker(verbose: bool = False) -> FakeDocker:
        made.append(FakeDocker())
        return made[-1]

    monkeypatch.setattr(images, "Docker", fake_docker)
    args = codebeaker_parser().parse_args(["images", "build", "--language", "bash"])
    assert args.handler(args) == 0
    assert made[0].builds[0] == SUPERVISOR_IMAGE


TOY_SPEC = """\
id = "toy"
name = "Toy"
file_name = "main.toy"
run = ["toy1", "{entrypoint}"]
version_command = ["toy1", "-v"]
"""


def test_the_server_settings_name_and_choose_the_images(tmp_path: Path) -> None:
    env = {
        "CODEBEAKER_IMAGE_PREFIX": "reg.example:5000/cb-",
        "CODEBEAKER_IMAGE_TAG": "t1",
        "CODEBEAKER_LANGUAGES_DIR": str(tmp_path),
        "CODEBEAKER_LANGUAGES": "py, c",
    }
    options = parse_args(["build"], environ=env)
    assert options.images == ImageNames("reg.example:5000/cb-", "t1")
    assert options.languages_dir == tmp_path
    assert options.languages == ("py", "c")
    flags = ["--image-prefix", "mine/", "--image-tag", "t2", "--language", "js"]
    options = parse_args(["build", *flags, "--languages-dir", "x"], environ=env)
    assert (options.images, options.languages) == (ImageNames("mine/", "t2"), ("js",))
    assert options.languages_dir == Path("x")
    assert parse_args(["build"], environ={}).images == ImageNames()


def test_prefix_and_tag_name_every_image_and_the_supervisor_they_copy(
    capsys: pytest.CaptureFixture[str],
) -> None:
    docker = FakeDocker()
    names = ImageNames("reg.example:5000/cb-", "t1")
    assert build(Options(languages=("py",), images=names), docker, Catalog.load()) == 0
    assert docker.builds[0] == "reg.example:5000/cb-supervisor:t1"
    assert set(docker.builds[1:]) == {
        "reg.example:5000/cb-python:t1",
        "reg.example:5000/cb-python-installer:t1",
        "reg.example:5000/cb-python-bookworm:t1",
        "reg.example:5000/cb-python-bookworm-installer:t1",
    }
    args = docker.build_args["reg.example:5000/cb-python:t1"]
    assert args["SUPERVISOR_IMAGE"] == "reg.example:5000/cb-supervisor:t1"
    assert "reg.example:5000/cb-python:t1: built in" in capsys.readouterr().out


def test_a_languages_dir_is_built_too(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "spec.toml").write_text(TOY_SPEC)
    (tmp_path / "toy" / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "toy2").mkdir()
    (tmp_path / "toy2" / "spec.toml").write_text(TOY_SPEC.replace("toy", "toy2"))
    made: list[FakeDocker] = []

    def fake_docker(verbose: bool = False) -> FakeDocker:
        made.append(FakeDocker())
        return made[-1]

    monkeypatch.setattr(images, "Docker", fake_docker)
    argv = ["images", "build", "--languages-dir", str(tmp_path), "--language", "toy"]
    argv += ["--language", "toy2", "--language", "bash"]
    args = codebeaker_parser().parse_args(argv)
    assert args.handler(args) == 0
    builds = {SUPERVISOR_IMAGE, "codebeaker/toy", "codebeaker/toy2", "codebeaker/bash"}
    assert set(made[0].builds) == builds
    assert made[0].targets["codebeaker/toy"].dockerfile is None  # its own
    assert made[0].targets["codebeaker/toy2"].dockerfile == PACKAGES_DOCKERFILE  # none: shared
    assert "FAILED" not in capsys.readouterr().err


def test_bad_names_or_language_folders_stop_the_build_before_docker(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(images, "Docker", lambda verbose=False: pytest.fail("Docker was used"))
    args = codebeaker_parser().parse_args(["images", "build", "--image-tag", "a:b"])
    assert args.handler(args) == 2
    assert "error: image_tag 'a:b' is not a Docker tag" in capsys.readouterr().err
    (tmp_path / "broken").mkdir()
    args = codebeaker_parser().parse_args(["images", "build", "--languages-dir", str(tmp_path)])
    assert args.handler(args) == 2
    assert f"error: {tmp_path / 'broken'}: a language folder needs" in capsys.readouterr().err
