"""Language runtimes as data: one folder per language under `languages/`.

Each folder holds a `spec.toml` (and a Dockerfile, unless Debian packages are
all its image needs): id, aliases, file name, an
optional compile command with the patterns that select its sources, the run
command, the version command, an optional packages command (printing the
packages baked into the image as a JSON object of name to version), extra
environment and `warm` (whether the server keeps a pool or a minimum of hosts
of it started when `--pool-languages` names none). Adding a language is
adding a folder; nothing here names a language. Operators add their own
from outside the installed package (`Catalog.load(extra_dirs=...)`), in the
same format; a malformed one is a start-up error naming its folder and field,
and none may take a built-in's id.

Commands may use placeholders, replaced per execution:
`{entrypoint}` (the file to run, relative to the workspace), `{stem}` (the
entrypoint without its extension) and, in `compile` only, `{sources}` (an
argument of its own, replaced by every file matching the spec's `sources`
patterns, sorted).

A language that ties a file's name to its content (Java's public class) says
so with `file_name_from`: a regular expression whose first group, found in a
single-file program, names its file (with the default file name's extension);
`public class Solution` is then `Solution.java` and runs as `Solution`.

A folder without a Dockerfile of its own is built from the one beside the
language folders (`languages/Dockerfile`): the supervisor and the Debian
packages its spec names in `debian_packages`, nothing else.

A language may have several versions. The folder's spec is the default; each
`[versions.NAME]` table adds one more, built from the same Dockerfile on the
Debian `suite` it names (passed as the build arg DEBIAN_SUITE to a Dockerfile
that declares it), with its own `env` on top of the language's. Its image is
`codebeaker/<id>-<NAME>`; which version it is is read from the image, like the
default's. A request names a version exactly or by a prefix of whole parts
(`3.11`); a prefix that fits several takes the default if it fits, else the
newest.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from codebeaker.runtimes.errors import UnknownLanguage, UnknownVersion

LANGUAGES_DIR = Path(__file__).resolve().parent / "languages"
SPEC_FILE = "spec.toml"
DOCKERFILE = "Dockerfile"
# The Dockerfile of every language folder that has none: Debian packages only.
PACKAGES_DOCKERFILE = LANGUAGES_DIR / DOCKERFILE
# Ids name images, labels and health services: lowercase words, no spaces.
_ID = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*\Z")
# Debian's package names (Policy 5.6.1), which are also safe as words of a shell line.
_PACKAGE = re.compile(r"[a-z0-9][a-z0-9+.-]+\Z")
ENTRYPOINT_PLACEHOLDER = "{entrypoint}"
STEM_PLACEHOLDER = "{stem}"
SOURCES_PLACEHOLDER = "{sources}"


@dataclass(frozen=True)
class LanguageSpec:
    """How to build and run one language; `version` and `packages` (name -> version)
    are filled in from the built image."""

    id: str
    name: str
    aliases: tuple[str, ...]
    file_name: str
    run: tuple[str, ...]
    version_command: tuple[str, ...]
    compile: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    directory: Path = LANGUAGES_DIR
    version: str = ""
    packages_command: tuple[str, ...] = ()
    packages: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Request-time packages: the installer kind ("pip", "npm"; empty: none) and the
    # variables that point the runtime at a mounted package set.
    installer: str = ""
    installer_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Names a single-file program after what it declares (group 1 + file_name's suffix).
    file_name_from: re.Pattern[str] | None = None
    # Kept started (a pool or a minimum of hosts) unless --pool-languages says otherwise;
    # the other languages' hosts follow demand only.
    warm: bool = False
    # Filled in for one request: the package set mounted read-only at PACKAGES_MOUNT
    # (its cache key and its folder on the host).
    package_set: str = ""
    package_dir: str = ""
    # A version other than the default: its name in spec.toml ("" for the default)
    # and the Debian suite its image is built on ("": the images' own).
    variant: str = ""
    suite: str = ""
    # What its image is built from: the folder's own Dockerfile, or PACKAGES_DOCKERFILE
    # with these Debian packages installed.
    dockerfile: Path = PACKAGES_DOCKERFILE
    debian_packages: tuple[str, ...] = ()

    @property
    def compiled(self) -> bool:
        return bool(self.compile)

    @property
    def key(self) -> str:
        """What names this (language, version) among all: its image, pools, readiness."""
        return f"{self.id}-{self.variant}" if self.variant else self.id

    @property
    def is_default(self) -> bool:
        return not self.variant

    def file_name_for(self, source: bytes) -> str:
        """The name a single-file program with this `source` gets when the caller names none."""
        if self.file_name_from is not None:
            found = self.file_name_from.search(source.decode("utf-8", errors="replace"))
            if found and found.group(1):
                return found.group(1) + PurePosixPath(self.file_name).suffix
        return self.file_name

    def with_package_set(self, key: str, directory: str) -> LanguageSpec:
        """This spec for one request whose package set (cache key, host folder) is
        mounted: the installer's variables on top of the language's."""
        env = MappingProxyType({**self.env, **self.installer_env})
        return replace(self, env=env, package_set=key, package_dir=directory)

    def command(self, entrypoint: str, args: Iterable[str]) -> tuple[str, ...]:
        """The argv that runs `entrypoint` with the caller's `args`."""
        return tuple(_fill(part, entrypoint) for part in self.run) + tuple(args)

    def compile_command(self, entrypoint: str, paths: Iterable[str]) -> tuple[str, ...]:
        """The argv that compiles the program whose files are `paths` (empty if interpreted)."""
        sources = sorted(p for p in paths if any(glob_match(g, p) for g in self.sources))
        argv: list[str] = []
        for part in self.compile:
            if part == SOURCES_PLACEHOLDER:
                argv += sources
            else:
                argv.append(_fill(part, entrypoint))
        return tuple(argv)


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Orders versions part by part, numbers as numbers (1.10 after 1.9)."""
    return tuple((int(p), "") if p.isdigit() else (-1, p) for p in version.split("."))


def version_aliases(spec: LanguageSpec, others: Sequence[LanguageSpec]) -> list[str]:
    """The shorter names that select `spec` among its language's versions `others`
    (itself included): prefixes of whole parts, longest first."""
    parts = spec.version.split(".") if spec.version else []
    prefixes = [".".join(parts[:n]) for n in range(len(parts) - 1, 0, -1)]
    return [p for p in prefixes if _pick(p, others) is spec]


def _pick(asked: str, versions: Sequence[LanguageSpec]) -> LanguageSpec | None:
    """The version `asked` selects: the exact one, else among those it is a prefix of,
    the default if it is one, else the newest; None if it fits none."""
    exact = [s for s in versions if s.version and s.version == asked.strip()]
    if exact:
        return exact[0]
    fitting = [s for s in versions if s.version and version_matches(asked, s.version)]
    if not fitting:
        return None
    defaults = [s for s in fitting if s.is_default]
    return defaults[0] if defaults else max(fitting, key=lambda s: version_key(s.version))


def version_matches(asked: str, version: str) -> bool:
    """Whether `asked` names `version`: the same, or a prefix of whole dotted parts
    (`3.13` and `3` name 3.13.5; `3.1` does not)."""
    asked = asked.strip()
    return bool(asked) and (version == asked or version.startswith(asked + "."))


def _fill(part: str, entrypoint: str) -> str:
    stem = str(PurePosixPath(entrypoint).with_suffix("")) if "." in entrypoint else entrypoint
    return part.replace(ENTRYPOINT_PLACEHOLDER, entrypoint).replace(STEM_PLACEHOLDER, stem)


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append("[^/]*")
        elif char == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


def glob_match(pattern: str, path: str) -> bool:
    """Shell-style match of a relative path: `*` and `?` never cross a `/`."""
    return _glob_regex(pattern).match(path) is not None


def load_spec(directory: Path) -> LanguageSpec:
    """The default version of the language in `directory` (see `load_language`)."""
    return load_language(directory)[0]


def load_language(directory: Path) -> list[LanguageSpec]:
    """Read `directory/spec.toml`: the default version first, then the others in
    name order; a malformed spec is a startup error."""
    path = directory / SPEC_FILE
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"{path}: {error}") from error
    try:
        installer, installer_env = _installer(raw.get("installer", {}))
        spec = LanguageSpec(
            id=_text(raw, "id"),
            name=_text(raw, "name"),
            aliases=tuple(_texts(raw, "aliases")),
            file_name=_text(raw, "file_name"),
            run=tuple(_texts(raw, "run")),
            version_command=tuple(_texts(raw, "version_command")),
            packages_command=tuple(_texts(raw, "packages_command")),
            compile=tuple(_texts(raw, "compile")),
            sources=tuple(_texts(raw, "sources")),
            env=MappingProxyType({str(k): str(v) for k, v in raw.get("env", {}).items()}),
            directory=directory,
            installer=installer,
            installer_env=installer_env,
            warm=_flag(raw, "warm"),
            file_name_from=_pattern(raw, "file_name_from"),
            dockerfile=_dockerfile(directory),
            debian_packages=tuple(_texts(raw, "debian_packages")),
        )
    except KeyError as error:
        raise ValueError(f"{path}: the field {error.args[0]} is missing") from error
    except TypeError as error:
        raise ValueError(f"{path}: {error}") from error
    problem = _inconsistency(spec)
    if problem:
        raise ValueError(f"{path}: {problem}")
    return [spec, *_versions(raw.get("versions", {}), spec, path)]


VERSION_FIELDS = ("suite", "env")


def _versions(raw: object, spec: LanguageSpec, path: Path) -> list[LanguageSpec]:
    """The `[versions.NAME]` tables: each a version besides the default."""
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: versions must be tables ([versions.NAME])")
    found = []
    for name, table in sorted(raw.items()):
        where = f"{path}: versions.{name}"
        if not isinstance(table, dict):
            raise ValueError(f"{where} must be a table")
        if not _ID.match(name):
            raise ValueError(f"{where}: the name must be lowercase letters and digits")
        unknown = sorted(set(table) - set(VERSION_FIELDS))
        if unknown:
            raise ValueError(
                f"{where}: unknown field {unknown[0]!r} (known: {', '.join(VERSION_FIELDS)})"
            )
        try:
            suite = _text(table, "suite")
            env = table.get("env", {})
            if not isinstance(env, dict):
                raise TypeError("the field env must be a table")
        except KeyError as error:
            raise ValueError(f"{where}: the field {error.args[0]} is missing") from error
        except TypeError as error:
            raise ValueError(f"{where}: {error}") from error
        merged = MappingProxyType({**spec.env, **{str(k): str(v) for k, v in env.items()}})
        found.append(replace(spec, variant=name, suite=suite, env=merged, warm=False))
    return found


INSTALLER_KINDS = ("pip", "npm")


def _installer(raw: object) -> tuple[str, Mapping[str, str]]:
    """The `[installer]` table: `kind` and its `env` (see `packages.requirements`)."""
    if not isinstance(raw, dict):
        raise TypeError("the field installer must be a table")
    if not raw:
        return "", MappingProxyType({})
    kind = raw.get("kind")
    if kind not in INSTALLER_KINDS:
        raise TypeError(f"the field installer.kind must be one of {', '.join(INSTALLER_KINDS)}")
    env = raw.get("env", {})
    if not isinstance(env, dict) or not env:
        raise TypeError("the field installer.env must name the variables that find packages")
    return str(kind), MappingProxyType({str(k): str(v) for k, v in env.items()})


def _dockerfile(directory: Path) -> Path:
    own = directory / DOCKERFILE
    return own if own.is_file() else PACKAGES_DOCKERFILE


def _inconsistency(spec: LanguageSpec) -> str | None:
    if spec.debian_packages and spec.dockerfile != PACKAGES_DOCKERFILE:
        return "debian_packages is for a folder without a Dockerfile: install them in yours"
    if any(not _PACKAGE.match(name) for name in spec.debian_packages):
        return "debian_packages must be Debian package names (e.g. lua5.4, gawk)"
    if spec.id != spec.directory.name:
        return f"id {spec.id!r} must match its folder name"
    if not _ID.match(spec.id):
        return f"id {spec.id!r} must be lowercase letters and digits, joined by . _ or -"
    if not spec.run:
        return "run must not be empty"
    if not spec.compiled and not _mentions_program(spec.run):
        return f"run must mention {ENTRYPOINT_PLACEHOLDER} or {STEM_PLACEHOLDER}"
    names_program = SOURCES_PLACEHOLDER in spec.compile or _mentions_program(spec.compile)
    if spec.compiled and not names_program:
        return f"compile must mention {SOURCES_PLACEHOLDER} or {ENTRYPOINT_PLACEHOLDER}"
    if SOURCES_PLACEHOLDER in spec.compile and not spec.sources:
        return f"compile uses {SOURCES_PLACEHOLDER}: list the patterns in sources"
    if any(SOURCES_PLACEHOLDER in part for part in spec.run):
        return f"{SOURCES_PLACEHOLDER} belongs in compile, not run"
    return None


def _mentions_program(argv: Sequence[str]) -> bool:
    return any(ENTRYPOINT_PLACEHOLDER in part or STEM_PLACEHOLDER in part for part in argv)


def _text(raw: Mapping[str, object], key: str) -> str:
    value = raw[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"the field {key} must be a non-empty string")
    return value


def _pattern(raw: Mapping[str, object], key: str) -> re.Pattern[str] | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise TypeError(f"the field {key} must be a regular expression")
    try:
        pattern = re.compile(value)
    except re.error as error:
        raise TypeError(f"the field {key} is not a regular expression: {error}") from None
    if pattern.groups < 1:
        raise TypeError(f"the field {key} needs a group: the part that names the file")
    return pattern


def _flag(raw: Mapping[str, object], key: str) -> bool:
    value = raw.get(key, False)
    if not isinstance(value, bool):
        raise TypeError(f"the field {key} must be true or false")
    return value


def _texts(raw: Mapping[str, object], key: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError(f"the field {key} must be a list of strings")
    return list(value)


class Catalog:
    """The known languages, looked up by id or alias (case-insensitive), and their
    versions (runtimes: the default first)."""

    def __init__(self, runtimes: Iterable[LanguageSpec]) -> None:
        self._versions: dict[str, list[LanguageSpec]] = {}
        keys: dict[str, LanguageSpec] = {}
        for spec in runtimes:
            if spec.key in keys:
                raise ValueError(
                    f"{spec.directory / SPEC_FILE}: {spec.key!r} is already the name of "
                    f"the runtime in {keys[spec.key].directory}"
                )
            keys[spec.key] = spec
            self._versions.setdefault(spec.id, []).append(spec)
        for spec_id, versions in self._versions.items():
            versions.sort(key=lambda s: (not s.is_default, s.variant))
            if not versions[0].is_default:
                raise ValueError(f"{versions[0].directory}: {spec_id} has no default version")
        self._specs = {spec_id: versions[0] for spec_id, versions in self._versions.items()}
        self._names: dict[str, str] = {}
        for spec in self._specs.values():
            for name in (spec.id, *spec.aliases):
                key = name.lower()
                if key in self._names and self._names[key] != spec.id:
                    other = self._specs[self._names[key]].directory
                    raise ValueError(
                        f"{spec.directory / SPEC_FILE}: the name {name!r} is already "
                        f"claimed by the language in {other}"
                    )
                self._names[key] = spec.id

    @classmethod
    def load(cls, languages_dir: Path = LANGUAGES_DIR, extra_dirs: Iterable[Path] = ()) -> Catalog:
        """The languages of `languages_dir` and of every folder in `extra_dirs`.

        An extra folder's every (non-hidden) subfolder must be a language; a
        ValueError names the folder and what is wrong with it.
        """
        folders = sorted(p for p in languages_dir.iterdir() if (p / SPEC_FILE).is_file())
        runtimes = [spec for folder in folders for spec in load_language(folder)]
        for extra in extra_dirs:
            runtimes += _extra_runtimes(extra, {spec.id: spec for spec in runtimes})
        return cls(runtimes)

    def only(self, names: Iterable[str], field: str = "languages") -> Catalog:
        """The languages named (ids or aliases), each with all its versions; an empty
        `names` keeps them all."""
        wanted = {self.resolve(name, field).id for name in names}
        if not wanted:
            return self
        return Catalog(spec for spec in self.runtimes() if spec.id in wanted)

    def specs(self) -> list[LanguageSpec]:
        """Each language once: its default version."""
        return sorted(self._specs.values(), key=lambda s: s.id)

    def runtimes(self) -> list[LanguageSpec]:
        """Every version of every language, by language, the default first."""
        return [spec for spec_id in sorted(self._versions) for spec in self._versions[spec_id]]

    def versions(self, language: str) -> list[LanguageSpec]:
        """The versions of `language` (an id), the default first."""
        return list(self._versions.get(language, ()))

    def resolve(self, language: str, field: str = "language") -> LanguageSpec:
        """The default version of the language named `language`; UnknownLanguage
        (about `field`) if none is."""
        spec_id = self._names.get(language.strip().lower())
        if spec_id is None:
            raise UnknownLanguage(language, list(self._specs), field)
        return self._specs[spec_id]

    def select(
        self,
        language: str,
        version: str = "",
        language_field: str = "language",
        version_field: str = "version",
    ) -> LanguageSpec:
        """The version of `language` that `version` names (exact or a prefix of whole
        parts; empty: the default); UnknownVersion (about `version_field`) if none."""
        default = self.resolve(language, language_field)
        versions = self._versions[default.id]
        if not version.strip():
            return default
        if len(versions) == 1 and not default.version:
            return default  # its version not read yet: the one there is
        chosen = _pick(version, versions)
        if chosen is None:
            raise UnknownVersion(default.id, version, [s.version for s in versions], version_field)
        return chosen

    def with_versions(self, versions: Mapping[str, str]) -> Catalog:
        """A copy whose runtimes carry the versions read from their images (by key)."""
        return Catalog(replace(s, version=versions.get(s.key, s.version)) for s in self.runtimes())

    def with_packages(self, packages: Mapping[str, Mapping[str, str]]) -> Catalog:
        """A copy whose runtimes carry the packages (name -> version) read from their
        images (by key)."""
        return Catalog(
            replace(s, packages=MappingProxyType(dict(packages[s.key]))) if s.key in packages else s
            for s in self.runtimes()
        )


def _extra_runtimes(folder: Path, known: Mapping[str, LanguageSpec]) -> list[LanguageSpec]:
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a folder of language folders")
    runtimes = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or not entry.is_dir():
            continue
        if not (entry / SPEC_FILE).is_file():
            raise ValueError(f"{entry}: a language folder needs a {SPEC_FILE}")
        versions = load_language(entry)
        if versions[0].id in known:
            raise ValueError(
                f"{entry / SPEC_FILE}: the id {versions[0].id!r} is taken by the language in "
                f"{known[versions[0].id].directory}"
            )
        runtimes += versions
    return runtimes
