"""What `docker build` sends from a build context, and a digest of it.

The image builder skips an image whose inputs did not change, so it must see
exactly the files Docker sees: `.dockerignore` is honoured the way Docker's
pattern matcher honours it, and the digest covers names, contents, the
executable bit, build args and parent image IDs (never mtimes or order).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DOCKERIGNORE = ".dockerignore"
# Hashed even when the .dockerignore lists them: Docker still reads both.
ALWAYS_SENT = frozenset({"Dockerfile", DOCKERIGNORE})


@dataclass(frozen=True)
class IgnoreRule:
    """One .dockerignore line, matched the way `docker build` matches it."""

    pattern: re.Pattern[str]  # matching a folder also matches everything under it
    exception: bool  # a `!` line: sends what earlier lines excluded


def ignore_rules(lines: Iterable[str]) -> list[IgnoreRule]:
    """The rules of a .dockerignore (moby's patternmatcher: `*`, `?`, `**`, `[...]`, `!`)."""
    rules = []
    for line in lines:
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        exception = text.startswith("!")
        text = posixpath.normpath(text[1:].strip() if exception else text).lstrip("/")
        if text in ("", "."):
            continue
        rules.append(IgnoreRule(_pattern_regex(text), exception))
    return rules


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            i += 3 if pattern.startswith("**/", i) else 2
            out.append(".*" if i >= len(pattern) else "(.*/)?")
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif char == "[" and "]" in pattern[i + 1 :]:
            # A character class, as in Go's filepath.Match (`[^...]` negates).
            end = pattern.index("]", i + 1)
            out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))


def ignored(rules: Sequence[IgnoreRule], path: PurePosixPath) -> bool:
    """Whether `docker build` leaves `path` (relative to the context) out; the last match wins."""
    parts = path.parts
    candidates = ["/".join(parts[: end + 1]) for end in range(len(parts))]  # folders, then path
    excluded = False
    for rule in rules:
        if any(rule.pattern.fullmatch(candidate) for candidate in candidates):
            excluded = not rule.exception
    return excluded


def context_files(directory: Path) -> list[Path]:
    """Every regular file under `directory` that `docker build` sends, as sorted relative paths.

    A `.dockerignore` there is honoured as Docker honours it, so the inputs
    hash covers exactly what the build sees.
    """
    ignore = directory / DOCKERIGNORE
    rules = ignore_rules(ignore.read_text().splitlines()) if ignore.is_file() else []
    files = (p.relative_to(directory) for p in directory.rglob("*") if p.is_file())
    return sorted(
        p
        for p in files
        if p.as_posix() in ALWAYS_SENT or not ignored(rules, PurePosixPath(p.as_posix()))
    )


def inputs_hash(
    context: Path,
    build_args: Mapping[str, str],
    parents: Sequence[str],
    dockerfile: Path | None = None,
) -> str:
    """A digest of what the image is made from (with `dockerfile` when it is not the
    context's own); mtimes and file order do not matter."""
    digest = hashlib.sha256()

    def put(kind: str, data: bytes) -> None:
        # Length-prefixed, so no two different input sets can run together.
        digest.update(kind.encode() + len(data).to_bytes(8, "big") + data)

    put("schema", b"1")
    for relative in context_files(context):
        path = context / relative
        put("file", relative.as_posix().encode())
        put("exec", b"x" if os.access(path, os.X_OK) else b"-")
        put("bytes", path.read_bytes())
    if dockerfile is not None:
        put("dockerfile", dockerfile.read_bytes())
    for name in sorted(build_args):
        put("arg", name.encode())
        put("value", build_args[name].encode())
    for parent in parents:
        put("parent", parent.encode())
    return "sha256:" + digest.hexdigest()
