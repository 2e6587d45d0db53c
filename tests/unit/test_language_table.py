"""Languages are data: every spec loads, the README's table matches them."""

from __future__ import annotations

from pathlib import Path

import pytest

from codebeaker.runtimes.catalog import Catalog, glob_match, load_spec
from tools.language_table import END, START, main, markdown_table, recorded_figures, rewrite

ROOT = Path(__file__).resolve().parents[2]


def test_readme_language_table_is_generated_from_the_specs() -> None:
    assert main([str(ROOT / "README.md"), "--check"]) == 0, "run `make readme`"


def test_every_language_and_version_has_recorded_hello_world_figures() -> None:
    figures = recorded_figures()
    missing = sorted({s.id for s in Catalog.load().runtimes() if s.key not in figures})
    assert not missing, f"run `python -m bench.languages --languages {','.join(missing)}`"
    for language, measured in figures.items():
        assert measured["version"], language
        assert 0 < float(str(measured["warm_ms"])) <= float(str(measured["cold_ms"])) * 1.5


def test_the_table_shows_version_and_hello_world_figures() -> None:
    figures: dict[str, dict[str, object]] = {
        "python": {"version": "3.13.5", "warm_ms": 17.0, "cold_ms": 102.0},
        "python-bookworm": {"version": "3.11.2", "warm_ms": 16.0, "cold_ms": 99.0},
    }
    table = markdown_table(Catalog.load(), figures).splitlines()
    python = [i for i, row in enumerate(table) if row.startswith("| Python | `python` |")]
    assert len(python) == 2 and python[1] == python[0] + 1  # one row per version, default first
    assert table[python[0]].startswith("| Python | `python` | 3.13.5 (default) |")
    assert table[python[0]].endswith("| 17.0 / 102.0 |")
    assert table[python[1]].startswith("| Python | `python` | 3.11.2 (bookworm) |")
    assert table[python[1]].endswith("| 16.0 / 99.0 |")
    assert "| Bash | `bash` | — |" in "\n".join(table)  # one version: no (default)


def test_rewrite_replaces_only_between_the_markers() -> None:
    text = f"intro\n{START}\nold\n{END}\noutro\n"
    assert rewrite(text, "new") == f"intro\n{START}\nnew\n{END}\noutro\n"
    with pytest.raises(ValueError):
        rewrite("no markers", "new")


def test_every_language_has_a_table_row_and_examples() -> None:
    table = markdown_table(Catalog.load())
    for spec in Catalog.load().specs():
        assert f"| `{spec.id}` |" in table
        assert (ROOT / "tests" / "languages" / spec.id).is_dir(), f"{spec.id} has no examples"


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("*.c", "main.c", True),
        ("*.c", "lib/util.c", False),
        ("lib/*.c", "lib/util.c", True),
        ("?.go", "a.go", True),
        ("*.go", ".hidden.go", True),
        ("a+b.c", "a+b.c", True),
    ],
)
def test_source_patterns_do_not_cross_folders(pattern: str, path: str, hit: bool) -> None:
    assert glob_match(pattern, path) is hit


def write_spec(tmp_path: Path, body: str) -> Path:
    folder = tmp_path / "lang"
    folder.mkdir()
    (folder / "spec.toml").write_text(
        'id = "lang"\nname = "Lang"\nfile_name = "main.x"\nversion_command = ["x"]\n' + body
    )
    return folder


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ('run = ["x"]\n', "run must mention"),
        ('compile = ["cc", "{sources}"]\nrun = ["./a"]\n', "list the patterns in sources"),
        ('compile = ["cc", "-o", "a"]\nrun = ["./a"]\n', "compile must mention"),
        ('run = ["x", "{entrypoint}", "{sources}"]\n', "belongs in compile"),
    ],
)
def test_inconsistent_specs_are_startup_errors(tmp_path: Path, body: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        load_spec(write_spec(tmp_path, body))


def test_compiled_spec_expands_sources_and_stem(tmp_path: Path) -> None:
    body = (
        'compile = ["cc", "{sources}", "-o", "{stem}.out"]\nsources = ["*.x"]\n'
        'run = ["./{stem}.out"]\n'
    )
    spec = load_spec(write_spec(tmp_path, body))
    assert spec.compiled
    assert spec.compile_command("main.x", ["b.x", "a.x", "a.h", "sub/c.x"]) == (
        "cc",
        "a.x",
        "b.x",
        "-o",
        "main.out",
    )
    assert spec.command("src/main.x", ["1"]) == ("./src/main.out", "1")
