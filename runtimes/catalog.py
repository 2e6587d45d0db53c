"""Language runtimes as data: one folder per language under `languages/`.

Each folder holds a Dockerfile and a `spec.toml` (id, aliases, file name, run
command, version command, extra environment). Adding a language is adding a
folder; nothing here names a language.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from codebeaker.runtimes.errors import UnknownLanguage

LANGUAGES_DIR = Path(__file__).resolve().parent / "languages"
IMAGE_PREFIX = "codebeaker/"
ENTRYPOINT_PLACEHOLDER = "{entrypoint}"


@dataclass(frozen=True)
class LanguageSpec:
    """How to run one language; `version` is filled in from the built image."""

    id: str
    name: str
    aliases: tuple[str, ...]
    file_name: str
    run: tuple[str, ...]
    version_command: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    directory: Path = LANGUAGES_DIR
    version: str = ""

    @property
    def image(self) -> str:
        return f"{IMAGE_PREFIX}{self.id}"

    def command(self, entrypoint: str, args: Iterable[str]) -> tuple[str, ...]:
        """The argv that runs `entrypoint` with the caller's `args`."""
        argv = tuple(part.replace(ENTRYPOINT_PLACEHOLDER, entrypoint) for part in self.run)
        return argv + tuple(args)


def load_spec(directory: Path) -> LanguageSpec:
    """Read `directory/spec.toml`; a malformed spec is a startup error."""
    path = directory / "spec.toml"
    with path.open("rb") as handle:
        raw = tomllib.load(handle)
    try:
        spec = LanguageSpec(
            id=_text(raw, "id"),
            name=_text(raw, "name"),
            aliases=tuple(_texts(raw, "aliases")),
            file_name=_text(raw, "file_name"),
            run=tuple(_texts(raw, "run")),
            version_command=tuple(_texts(raw, "version_command")),
            env=MappingProxyType({str(k): str(v) for k, v in raw.get("env", {}).items()}),
            directory=directory,
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from error
    if spec.id != directory.name:
        raise ValueError(f"{path}: id {spec.id!r} must match its folder name")
    if not any(ENTRYPOINT_PLACEHOLDER in part for part in spec.run):
        raise ValueError(f"{path}: run must mention {ENTRYPOINT_PLACEHOLDER}")
    return spec


def _text(raw: Mapping[str, object], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key} must be a non-empty string")
    return value


def _texts(raw: Mapping[str, object], key: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"{key} must be a list of strings")
    return list(value)


class Catalog:
    """The known languages, looked up by id or alias (case-insensitive)."""

    def __init__(self, specs: Iterable[LanguageSpec]) -> None:
        self._specs = {spec.id: spec for spec in specs}
        self._names: dict[str, str] = {}
        for spec in self._specs.values():
            for name in (spec.id, *spec.aliases):
                key = name.lower()
                if key in self._names and self._names[key] != spec.id:
                    raise ValueError(f"name {name!r} is claimed by two languages")
                self._names[key] = spec.id

    @classmethod
    def load(cls, languages_dir: Path = LANGUAGES_DIR) -> Catalog:
        folders = sorted(p for p in languages_dir.iterdir() if (p / "spec.toml").is_file())
        return cls(load_spec(folder) for folder in folders)

    def specs(self) -> list[LanguageSpec]:
        return sorted(self._specs.values(), key=lambda s: s.id)

    def resolve(self, language: str) -> LanguageSpec:
        spec_id = self._names.get(language.strip().lower())
        if spec_id is None:
            raise UnknownLanguage(language, list(self._specs))
        return self._specs[spec_id]

    def with_versions(self, versions: Mapping[str, str]) -> Catalog:
        """A copy whose specs carry the versions read from their images."""
        return Catalog(replace(s, version=versions.get(s.id, s.version)) for s in self.specs())
