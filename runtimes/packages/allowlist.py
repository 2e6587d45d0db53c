"""The packages a server lets requests ask for (`--package-allowlist FILE`).

The file is TOML: one table per language id, each key a package name and each
value the versions allowed (see `requirements` for the grammar):

    [python]
    tabulate = "*"
    requests-toolbelt = ">=1.0, <2"

    [javascript]
    left-pad = "1.3.0"

A request names packages and, optionally, versions; each must be on its
language's list, and the version asked for is narrowed by the list's range.
What the listed packages depend on comes with them, as their index declares.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.errors import InvalidRequest, Reason
from codebeaker.runtimes.packages.requirements import (
    KINDS,
    Constraint,
    Requirement,
    RequirementError,
    describe,
    ordered,
    parse_range,
)

MAX_PACKAGES = 32  # per request


@dataclass(frozen=True)
class Asked:
    """One package as a request names it: a name and an optional version or range."""

    name: str
    version: str = ""


@dataclass(frozen=True)
class Allowlist:
    """Language id -> normalized name -> the constraints its versions must meet."""

    languages: Mapping[str, Mapping[str, tuple[Constraint, ...]]] = field(
        default_factory=lambda: MappingProxyType({})
    )

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> Allowlist:
        """Read and check the file; a ValueError names the file and what is wrong."""
        try:
            with path.open("rb") as handle:
                raw = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ValueError(f"{path}: {error}") from error
        languages: dict[str, Mapping[str, tuple[Constraint, ...]]] = {}
        for language, entries in raw.items():
            where = f"{path}: [{language}]"
            try:
                spec = catalog.resolve(language)
            except InvalidRequest:
                raise ValueError(f"{where}: no such language on this server") from None
            if not spec.installer:
                raise ValueError(f"{where}: {spec.id} has no package installer")
            if spec.id in languages:
                raise ValueError(f"{where}: {spec.id} has a table already (under another name)")
            if not isinstance(entries, dict):
                raise ValueError(f'{where} must be a table of package = "versions"')
            kind = KINDS[spec.installer]
            names: dict[str, tuple[Constraint, ...]] = {}
            for name, versions in entries.items():
                if not isinstance(versions, str):
                    raise ValueError(f'{where} {name}: the versions must be a string, e.g. "*"')
                try:
                    normalized, allowed = kind.check_name(name), parse_range(versions)
                except RequirementError as error:
                    raise ValueError(f"{where} {name}: {error}") from None
                if normalized in names:
                    raise ValueError(f"{where} {name}: listed twice (as {normalized})")
                names[normalized] = allowed
            languages[spec.id] = MappingProxyType(names)
        return cls(MappingProxyType(languages))

    def allowed(self, language: str) -> Mapping[str, tuple[Constraint, ...]]:
        return self.languages.get(language, MappingProxyType({}))

    def check(
        self, spec: LanguageSpec, asked: Iterable[Asked], field: str
    ) -> tuple[Requirement, ...]:
        """The requirements to install for `asked`, each narrowed by its allowed range;
        InvalidRequest naming the first package that is malformed or not allowed."""
        wanted = list(asked)
        if not wanted:
            return ()
        if len(wanted) > MAX_PACKAGES:
            raise InvalidRequest(
                field,
                f"{len(wanted)} packages is above the maximum {MAX_PACKAGES}",
                reason=Reason.TOO_MANY,
            )
        if not spec.installer:
            raise InvalidRequest(
                field,
                f"{spec.id} programs cannot ask for packages",
                reason=Reason.FIELD_UNSUPPORTED,
            )
        kind = KINDS[spec.installer]
        allowed = self.allowed(spec.id)
        requirements: dict[str, Requirement] = {}
        for index, package in enumerate(wanted):
            where = f"{field}[{index}]"
            try:
                name = kind.check_name(package.name)
                constraints = parse_range(package.version)
            except RequirementError as error:
                raise InvalidRequest(where, str(error), reason=Reason.VALUE_INVALID) from None
            if name not in allowed:
                listed = ", ".join(sorted(allowed)) or "none"
                raise InvalidRequest(
                    where,
                    f"package {package.name!r} is not on this server's allow-list for "
                    f"{spec.id} (allowed: {listed})",
                    reason=Reason.PACKAGE_NOT_ALLOWED,
                )
            if name in requirements:
                raise InvalidRequest(
                    where,
                    f"package {package.name!r} is asked for twice",
                    reason=Reason.VALUE_INVALID,
                )
            merged = ordered((*allowed[name], *constraints))
            exact = [c for c in constraints if c.operator == "=="]
            if exact and not all(c.allows(exact[0].version) for c in allowed[name]):
                raise InvalidRequest(
                    where,
                    f"{package.name} {exact[0].version} is not allowed here "
                    f"(allowed: {describe(allowed[name])})",
                    reason=Reason.PACKAGE_NOT_ALLOWED,
                )
            requirements[name] = Requirement(name, merged)
        return tuple(sorted(requirements.values()))
