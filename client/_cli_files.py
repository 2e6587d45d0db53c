"""Local files of `codebeaker run`: the program and its test cases read in, and
the files the program left behind written back out.

The server names output files, so their paths are checked again here before
anything is written: a path that is absolute, climbs out with `..`, or lands
outside the chosen directory through a symlink already there is refused.
"""

from __future__ import annotations

import argparse
import os
import posixpath
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from codebeaker.client._cli_support import CliError, human_bytes, say
from codebeaker.client.types import (
    Comparison,
    ExecutionResult,
    File,
    OutputFile,
    OutputFileStatus,
    TestCase,
)


@dataclass(frozen=True)
class Program:
    """What `run` sends: one file as `source` under its own name, or several as `files`."""

    first: Path
    source: bytes | None = None
    files: tuple[File, ...] = ()
    entrypoint: str | None = None


@dataclass(frozen=True)
class CaseFiles:
    """`--case IN[:OUT]`: a test case's stdin and, if judged, its expected stdout."""

    stdin: Path
    expected: Path | None = None


def read_program(paths: Sequence[str], cwd: Path | None = None) -> Program:
    """The program's files; the first is the entrypoint.

    Each is sent under its path relative to `cwd` (default: the current
    directory) when it lies under it, else under its base name.
    """
    first = Path(paths[0])
    if len(paths) == 1:  # under its own name: errors cite it, Java finds its class
        return Program(first, source=read_file(first, "program"), entrypoint=first.name)
    base = Path(os.path.abspath(cwd or Path.cwd()))
    files: list[File] = []
    sources: dict[str, str] = {}
    for raw in paths:
        name = sent_name(Path(raw), base)
        if name in sources:
            raise CliError(f"{sources[name]} and {raw} would both be sent as {name}")
        sources[name] = raw
        files.append(File(name, read_file(Path(raw), "program file")))
    return Program(first, files=tuple(files), entrypoint=files[0].path)


def sent_name(path: Path, cwd: Path) -> str:
    """`path` relative to `cwd` if it is under it, else its base name (POSIX form)."""
    absolute = Path(os.path.abspath(path))
    try:
        relative = absolute.relative_to(cwd)
    except ValueError:
        return absolute.name
    return relative.as_posix() if relative.parts else absolute.name


def parse_case(text: str) -> CaseFiles:
    """`IN:OUT` (judged) or `IN` (run, not judged), for argparse."""
    stdin, colon, expected = text.partition(":")
    if not stdin or (colon and not expected):
        raise argparse.ArgumentTypeError(f"expected IN or IN:OUT, got {text!r}")
    return CaseFiles(Path(stdin), Path(expected) if colon else None)


def read_cases(cases: Iterable[CaseFiles], comparison: Comparison) -> list[TestCase]:
    return [
        TestCase(
            stdin=read_file(case.stdin, "case input"),
            expected_stdout=(
                read_file(case.expected, "expected output") if case.expected is not None else None
            ),
            comparison=comparison,
        )
        for case in cases
    ]


def read_file(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise CliError(f"cannot read {what} {path}: {error.strerror or error}") from error


def read_stdin(name: str | None) -> bytes:
    """`--stdin FILE`: FILE's bytes, our own stdin for `-`, nothing when unset."""
    if name is None:
        return b""
    if name == "-":
        return sys.stdin.buffer.read()
    return read_file(Path(name), "stdin file")


def save_output_files(result: ExecutionResult, directory: Path, *, verbose: bool) -> bool:
    """Write the returned files under `directory` (each test case's under `case-N/`).

    Reports every file not returned whole on stderr; returns False when one
    could not be written here.
    """
    if not result.test_cases:
        return _save(result.files, directory, verbose=verbose)
    saved = [
        _save(case.files, directory / f"case-{case.test_case}", verbose=verbose)
        for case in result.test_cases
    ]
    return all(saved)


def safe_target(directory: Path, path: str) -> Path | None:
    """Where `path` goes under `directory`, or None if it would land outside it."""
    if not path or "\x00" in path:
        return None
    normal = posixpath.normpath(path)
    if normal.startswith("/") or normal in (".", "..") or normal.startswith("../"):
        return None
    target = directory.joinpath(*normal.split("/"))
    # A symlink already in `directory` must not carry the file elsewhere.
    if not target.resolve().is_relative_to(directory.resolve()):
        return None
    return target


def _save(files: Iterable[OutputFile], directory: Path, *, verbose: bool) -> bool:
    written = True
    for file in files:
        if file.status not in (OutputFileStatus.OK, OutputFileStatus.TRUNCATED):
            say(f"output file {file.path}: {file.status.value}" + _reason(file))
            continue
        target = safe_target(directory, file.path)
        if target is None:
            say(f"output file {file.path}: refused: outside {directory}")
            written = False
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file.content)
        except OSError as error:
            say(f"output file {file.path}: cannot write {target}: {error.strerror or error}")
            written = False
            continue
        if file.status is OutputFileStatus.TRUNCATED:
            say(
                f"output file {file.path}: TRUNCATED: wrote the first "
                f"{human_bytes(len(file.content))} of {human_bytes(file.size)}" + _reason(file)
            )
        elif verbose:
            say(f"wrote {target} ({human_bytes(len(file.content))})")
    return written


def _reason(file: OutputFile) -> str:
    return f" ({file.reason})" if file.reason else ""
