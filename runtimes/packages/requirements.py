"""Package requirements: a name and version constraints, as a request or an allow-list says.

One grammar for every language, deliberately small: a version is dotted numbers
(`1`, `2.31`, `4.17.21`); a range is comparators joined by commas (`>=1.2, <2`),
each `==`, `>=`, `<=`, `>` or `<` and a version; a bare version means `==`; empty or
`*` means any. Names follow the installer's rules (`pip`: PyPI project names,
compared normalized as PEP 503 says; `npm`: npm's lowercase names, scopes too).
How a requirement is spelled for its installer, and how the installer's record
of what it installed is read, live here too, per installer kind.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

VERSION = re.compile(r"[0-9]{1,9}(?:\.[0-9]{1,9}){0,5}\Z")
OPERATORS = ("==", ">=", "<=", ">", "<")  # two-character ones first: parsed in this order
ANY = ("", "*")
MAX_NAME = 214


class RequirementError(ValueError):
    """A malformed name, version or range; the message says which and why."""


def version_key(version: str) -> tuple[int, ...]:
    """A version as numbers, trailing zeros dropped (`1.2` == `1.2.0`). The leading
    dotted numbers of an installed version's string count (`1.2.3rc1` -> 1.2.3)."""
    match = re.match(r"[0-9]+(?:\.[0-9]+)*", version)
    if match is None:
        raise RequirementError(f"{version!r} is not a version")
    parts = [int(part) for part in match.group(0).split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


@dataclass(frozen=True, order=True)
class Constraint:
    operator: str
    version: str

    def allows(self, version: str) -> bool:
        have, want = version_key(version), version_key(self.version)
        return {
            "==": have == want,
            ">=": have >= want,
            "<=": have <= want,
            ">": have > want,
            "<": have < want,
        }[self.operator]

    def __str__(self) -> str:
        return f"{self.operator}{self.version}"


def parse_range(text: str) -> tuple[Constraint, ...]:
    """`>=1.2, <2` -> its constraints; a bare version is `==`; "" and "*" are none."""
    text = text.strip()
    if text in ANY:
        return ()
    constraints = []
    for part in text.split(","):
        part = part.strip()
        operator = next((op for op in OPERATORS if part.startswith(op)), "==")
        version = part[len(operator) :].strip() if part.startswith(operator) else part
        if not VERSION.match(version):
            raise RequirementError(
                f"{text!r} is not a version range: {part!r} must be an operator "
                f"({', '.join(OPERATORS)}) and a version of dotted numbers, e.g. >=1.2, <2"
            )
        constraints.append(Constraint(operator, version))
    return ordered(constraints)


def ordered(constraints: Iterable[Constraint]) -> tuple[Constraint, ...]:
    """Without repeats, by version (lower bounds first), as people write a range."""
    return tuple(sorted(set(constraints), key=lambda c: (version_key(c.version), c.operator)))


def describe(constraints: tuple[Constraint, ...]) -> str:
    return ", ".join(str(c) for c in constraints) or "any version"


@dataclass(frozen=True, order=True)
class Requirement:
    """A package by its normalized name, with every constraint it must meet."""

    name: str
    constraints: tuple[Constraint, ...] = ()

    def allows(self, version: str) -> bool:
        return all(c.allows(version) for c in self.constraints)

    def __str__(self) -> str:
        return self.name + (f" ({describe(self.constraints)})" if self.constraints else "")


@dataclass(frozen=True)
class InstallerKind:
    """How one installer names packages, spells a requirement and records what it did."""

    name: str
    _name_pattern: re.Pattern[str]
    normalize: Callable[[str], str]
    spell: Callable[[Requirement], str]
    installed: Callable[[Path], dict[str, str]]  # its output folder -> name -> version

    def check_name(self, name: str) -> str:
        """The normalized name, or RequirementError saying why `name` is not one."""
        if len(name) > MAX_NAME or not self._name_pattern.match(name):
            raise RequirementError(f"{name[:64]!r} is not a valid {self.name} package name")
        return self.normalize(name)


def _pip_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip_spell(requirement: Requirement) -> str:
    return requirement.name + ",".join(str(c) for c in requirement.constraints)


PIP_REPORT = "report.json"


def _pip_installed(out: Path) -> dict[str, str]:
    """What pip's `--report` says it installed."""
    report = json.loads((out / PIP_REPORT).read_text())
    return {
        _pip_name(str(item["metadata"]["name"])): str(item["metadata"]["version"])
        for item in report.get("install", [])
    }


def _semver(version: str) -> str:
    """`1.3` as `1.3.0`: npm reads a partial version as a range (`1.3` is any 1.3.x,
    `<=1.2` anything below 1.3), not as the version our grammar means."""
    parts = version.split(".")
    return ".".join(parts + ["0"] * (3 - len(parts)))


def _npm_spell(requirement: Requirement) -> str:
    parts = [
        _semver(c.version) if c.operator == "==" else c.operator + _semver(c.version)
        for c in requirement.constraints
    ]
    return f"{requirement.name}@{' '.join(parts)}" if parts else requirement.name


NPM_PREFIX = "packages"  # npm's --prefix under the output folder, mounted as it is


def _npm_installed(out: Path) -> dict[str, str]:
    """Every package of npm's lockfile, by its path under node_modules (nested ones
    as a/node_modules/b), with its version."""
    lock = json.loads((out / NPM_PREFIX / "package-lock.json").read_text())
    found = {}
    for path, entry in (lock.get("packages") or {}).items():
        if path.startswith("node_modules/") and isinstance(entry, Mapping):
            found[path.removeprefix("node_modules/")] = str(entry.get("version", ""))
    return found


PIP = InstallerKind(
    "pip",
    re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?\Z"),
    _pip_name,
    _pip_spell,
    _pip_installed,
)
NPM = InstallerKind(
    "npm",
    re.compile(r"(?:@[a-z0-9][a-z0-9._~-]*/)?[a-z0-9][a-z0-9._~-]*\Z"),
    str,
    _npm_spell,
    _npm_installed,
)
KINDS = {kind.name: kind for kind in (PIP, NPM)}
