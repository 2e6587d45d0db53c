"""Build the runtime images: `codebeaker/supervisor` and one `codebeaker/<id>` per language.

The sandbox only runs images already on the machine, and no registry answers on
our machines, so a fresh checkout needs one command that makes every image from
Debian packages (`codebeaker images build`, or `python -m
codebeaker.runtimes.docker.images build`; `make images`). `make run` and
`make test` call it every time, so a re-run must be nearly free: each image
carries a hash of its inputs (build context, build args, parent image IDs) in
`INPUTS_LABEL` and is skipped while it matches. Language images also carry the
runtime's version in `VERSION_LABEL` and, where the spec has a
`packages_command`, the packages baked in with their versions in
`PACKAGES_LABEL`; the server reads both. A language with an `[installer]`
also gets `codebeaker/<id>-installer`, its Dockerfile's `installer` stage: the
trusted step that installs request-time packages. A Dockerfile that declares
`ARG EXTRA_CA_CERTS` gets this host's own CA certificates (the PEM files
under /usr/local/share/ca-certificates, Debian's place for them), so that a
build step behind a TLS-intercepting proxy can reach a package registry. Build tooling,
not the request path: it drives the `docker` CLI, so users see Docker's own
messages and get Docker's build cache. It names images as the server does
and reads the server's variables for that (CODEBEAKER_IMAGE_PREFIX,
CODEBEAKER_IMAGE_TAG), builds an operator's own languages too
(CODEBEAKER_LANGUAGES_DIR) and, like the server, only the served ones
(CODEBEAKER_LANGUAGES), so one environment serves what it built.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.docker.buildcontext import inputs_hash
from codebeaker.runtimes.docker.labels import (
    IMAGE_PREFIX,
    INPUTS_LABEL,
    INSTALLER_STAGE,
    PACKAGES_LABEL,
    VERSION_LABEL,
    ImageNames,
    image_for,
    installer_image_for,
)
from codebeaker.runtimes.errors import UnknownLanguage

PROG = "python -m codebeaker.runtimes.docker.images"
DESCRIPTION = (
    "Build the runtime images (the supervisor and one per language) on the local Docker "
    "engine, skipping those whose inputs did not change."
)
SUPERVISOR_IMAGE = ImageNames().supervisor
SUPERVISOR_DIR = Path(__file__).resolve().parents[1] / "supervisor"
# The Debian release every image is built on; the names and sources below follow it.
DEBIAN_SUITE = "trixie"


def pull_candidate(suite: str) -> str:
    """Debian's own slim image of `suite`, used where it is on the machine or a registry answers."""
    return f"debian:{suite}-slim"


def local_base_image(suite: str) -> str:
    """The name of our base image of `suite`, built with mmdebstrap."""
    return f"codebeaker/debian:{suite}"


def debian_sources(suite: str) -> tuple[str, ...]:
    """The mmdebstrap base's apt sources: the release, its updates and its security
    fixes, so that rebuilds pick up fixes."""
    return (
        f"deb http://deb.debian.org/debian {suite} main",
        f"deb http://deb.debian.org/debian {suite}-updates main",
        f"deb http://deb.debian.org/debian-security {suite}-security main",
    )


DEFAULT_BASE_IMAGE = pull_candidate(DEBIAN_SUITE)
LOCAL_BASE_IMAGE = local_base_image(DEBIAN_SUITE)
BASE_IMAGE_ENV = "CODEBEAKER_BASE_IMAGE"
# The server's own settings of the same names (`codebeaker serve --help`).
IMAGE_PREFIX_ENV = "CODEBEAKER_IMAGE_PREFIX"
IMAGE_TAG_ENV = "CODEBEAKER_IMAGE_TAG"
LANGUAGES_DIR_ENV = "CODEBEAKER_LANGUAGES_DIR"
LANGUAGES_ENV = "CODEBEAKER_LANGUAGES"
PULL_TIMEOUT = 20.0
ENGINE_TIMEOUT = 15.0
VERSION_TIMEOUT = 60.0
TAIL_LINES = 40
# Language images built at once: most of a build is fetching and unpacking Debian's
# packages, which overlap well even on two cores.
DEFAULT_JOBS = 3
# The build arg that carries this host's CA certificates, for Dockerfiles that declare it.
EXTRA_CA_ARG = "EXTRA_CA_CERTS"
LOCAL_CA_DIR = Path("/usr/local/share/ca-certificates")
# The build arg that names the Debian suite being built on, for Dockerfiles that
# declare it (e.g. to pick the npm lock that suite's Node runs).
SUITE_ARG = "DEBIAN_SUITE"
# The build arg of the shared Dockerfile (languages/Dockerfile): the Debian packages
# a spec names in debian_packages.
PACKAGES_ARG = "DEBIAN_PACKAGES"
INSTALL_HINT = "as root, `scripts/ensure-docker.sh` installs and starts Docker and mmdebstrap"

# The mmdebstrap base: debian:*-slim's dpkg excludes, which persist and keep later
# apt layers lean.
DEBIAN_SOURCES = debian_sources(DEBIAN_SUITE)
DPKG_EXCLUDES = (
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "info", "locale")),
    *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("groff", "lintian")),
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",  # after the doc exclude: last match wins
)
# Merged /usr the way debootstrap does it; without this hook bookworm's
# init-system-helpers pulls in usrmerge and, with it, ~50 MB of perl. Trixie's
# base-files makes the links itself; there the hook only adds lib32 and libx32.
MERGED_USR_HOOK = Path("/usr/share/mmdebstrap/hooks/merged-usr")
# The image config `docker import` would otherwise leave empty.
IMPORT_CHANGES = ("ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",)

Action = Literal["skip", "build", "label"]


class BuildError(Exception):
    """A failure the user can act on; the message says what to do."""


@dataclass(frozen=True)
class Options:
    base_image: str | None = None
    languages: tuple[str, ...] = ()
    force: bool = False
    verbose: bool = False
    supervisor_dir: Path = SUPERVISOR_DIR
    images: ImageNames = field(default_factory=ImageNames)
    languages_dir: Path | None = None
    jobs: int = DEFAULT_JOBS


@dataclass(frozen=True)
class Target:
    """One image to build; an empty `version_command` means no version label, an
    empty `packages_command` no packages label."""

    image: str
    context: Path
    build_args: Mapping[str, str] = field(default_factory=dict)
    version_command: tuple[str, ...] = ()
    packages_command: tuple[str, ...] = ()
    stage: str = ""  # a build stage of the Dockerfile (--target); empty: the last one
    dockerfile: Path | None = None  # None: the context's own


def add_images_command(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `images` (with `images build`) to the `codebeaker` command's subcommands."""
    images = subparsers.add_parser(
        "images", help="build the runtime images (Docker)", description=DESCRIPTION
    )
    add_subcommands(images)


def build_parser(environ: Mapping[str, str] = os.environ) -> argparse.ArgumentParser:
    """The parser of `python -m codebeaker.runtimes.docker.images`."""
    parser = argparse.ArgumentParser(prog=PROG, description=DESCRIPTION)
    add_subcommands(parser, environ)
    return parser


def add_subcommands(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] = os.environ
) -> None:
    """`build` under `parser`; its handler (`args.handler(args) -> int`) builds."""
    commands = parser.add_subparsers(dest="images_command", required=True, metavar="COMMAND")
    command = commands.add_parser(
        "build",
        help="build the supervisor and language images",
        description="Build the supervisor and language images whose inputs changed; "
        "exit 1 when any failed.",
    )
    command.set_defaults(handler=run_build)
    command.add_argument(
        "--base-image",
        metavar="IMAGE",
        default=environ.get(BASE_IMAGE_ENV) or None,
        help=f"Debian {DEBIAN_SUITE} image to build on (env {BASE_IMAGE_ENV}; default: "
        f"{DEFAULT_BASE_IMAGE}, else {LOCAL_BASE_IMAGE} built with mmdebstrap)",
    )
    served = [name.strip() for name in environ.get(LANGUAGES_ENV, "").split(",") if name.strip()]
    command.add_argument(
        "--language",
        metavar="ID",
        action="append",
        default=None,
        help="build only this language (id or alias; repeatable; default: those in "
        f"{LANGUAGES_ENV}, comma-separated, else all)",
    )
    command.set_defaults(served_languages=served)
    command.add_argument(
        "--image-prefix",
        metavar="PREFIX",
        default=environ.get(IMAGE_PREFIX_ENV) or IMAGE_PREFIX,
        help=f"images are <prefix>supervisor and <prefix><id> (env {IMAGE_PREFIX_ENV}; "
        f"default {IMAGE_PREFIX})",
    )
    command.add_argument(
        "--image-tag",
        metavar="TAG",
        default=environ.get(IMAGE_TAG_ENV, ""),
        help=f"tag of every image (env {IMAGE_TAG_ENV}; default none, i.e. latest)",
    )
    command.add_argument(
        "--languages-dir",
        metavar="DIR",
        type=Path,
        default=Path(environ[LANGUAGES_DIR_ENV]) if environ.get(LANGUAGES_DIR_ENV) else None,
        help="also build the language folders in DIR (a spec.toml each, and a Dockerfile "
        "unless it names debian_packages; "
        f"env {LANGUAGES_DIR_ENV})",
    )
    command.add_argument("--force", action="store_true", help="rebuild without Docker's cache")
    command.add_argument(
        "-j",
        "--jobs",
        metavar="N",
        type=int,
        default=None,
        help=f"language images built at once (default {DEFAULT_JOBS}; 1 with --verbose)",
    )
    command.add_argument("-v", "--verbose", action="store_true", help="stream Docker's output")
    # A stand-in supervisor build context, for testing this tool on its own.
    command.add_argument(
        "--supervisor-dir", type=Path, default=SUPERVISOR_DIR, help=argparse.SUPPRESS
    )


def options_from(args: argparse.Namespace) -> Options:
    """The options of a parsed `build`; a ValueError for an image prefix or tag
    Docker would refuse."""
    languages = args.language if args.language is not None else args.served_languages
    jobs = args.jobs if args.jobs is not None else 1 if args.verbose else DEFAULT_JOBS
    if jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {jobs}")
    return Options(
        args.base_image,
        tuple(languages),
        args.force,
        args.verbose,
        args.supervisor_dir,
        ImageNames(args.image_prefix, args.image_tag),
        args.languages_dir,
        jobs,
    )


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str] = os.environ) -> Options:
    return options_from(build_parser(environ).parse_args(argv))


def decide(
    labels: Mapping[str, str],
    digest: str,
    wants_version: bool,
    force: bool,
    wants_packages: bool = False,
) -> Action:
    """Skip a current image, only relabel one that lacks its version or packages, else build."""
    if force or labels.get(INPUTS_LABEL) != digest:
        return "build"
    if wants_version and not labels.get(VERSION_LABEL):
        return "label"
    if wants_packages and PACKAGES_LABEL not in labels:
        return "label"
    return "skip"


def parse_version(output: str) -> str:
    """The first non-empty line of a version command's output."""
    for line in output.splitlines():
        version = line.strip()
        if version:
            if len(version) > 64 or not version.isprintable():
                raise BuildError(f"implausible version string {version!r}")
            return version
    raise BuildError("the version command printed nothing")


def parse_packages(output: str) -> str:
    """A packages command's output, checked: one JSON object of package name to
    version; returned as the label's value (compact JSON, sorted by name)."""
    try:
        found = json.loads(output)
    except ValueError:
        raise BuildError(f"the packages command printed no JSON: {tail(output, 3)!r}") from None
    if not isinstance(found, dict):
        raise BuildError(f"the packages command printed {type(found).__name__}, not an object")
    for name, version in found.items():
        if not isinstance(version, str):
            raise BuildError(f"package {name!r}: the version {version!r} is not a string")
        for text in (name, version):
            if not text or len(text) > 64 or not text.isprintable():
                raise BuildError(f"implausible package name or version {text!r}")
    return json.dumps(found, sort_keys=True, separators=(",", ":"))


def declares_arg(dockerfile: Path, name: str) -> bool:
    """Whether a Dockerfile declares the build arg `name` (`ARG EXTRA_CA_CERTS`: it
    takes this host's CA certificates; `ARG DEBIAN_SUITE`: the suite's name)."""
    declared = re.compile(rf"^\s*ARG\s+{re.escape(name)}\b", re.MULTILINE | re.IGNORECASE)
    try:
        return bool(declared.search(dockerfile.read_text(errors="replace")))
    except OSError:
        return False


def extra_ca_certs() -> str:
    """This host's own CA certificates (PEM): every *.crt under LOCAL_CA_DIR, sorted."""
    if not LOCAL_CA_DIR.is_dir():
        return ""
    found = []
    for path in sorted(LOCAL_CA_DIR.rglob("*.crt")):
        try:
            found.append(path.read_text(errors="replace").strip())
        except OSError:
            continue
    return "\n".join(text for text in found if text)


def tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last lines of a command's output, without terminal colour codes."""
    return "\n".join(re.sub(r"\x1b\[[0-9;]*m", "", text).rstrip().splitlines()[-lines:])


class Engine(Protocol):
    """What choosing a base image needs from Docker (a fake in unit tests)."""

    def image_id(self, image: str) -> str | None: ...
    def pull(self, image: str) -> bool: ...
    def import_debian(self, tag: str, suite: str) -> None: ...


def resolve_base_image(
    engine: Engine, explicit: str | None, suite: str = DEBIAN_SUITE
) -> tuple[str, str]:
    """The base image to build on (Debian `suite` unless one is given), and how it
    was obtained (for the progress line)."""
    if explicit:
        if engine.image_id(explicit) or engine.pull(explicit):
            return explicit, "given"
        raise BuildError(
            f"base image {explicit!r} is not on this machine and could not be pulled; "
            f"build or load it first, or drop --base-image/{BASE_IMAGE_ENV}"
        )
    candidate, ours = pull_candidate(suite), local_base_image(suite)
    for local in (candidate, ours):
        if engine.image_id(local):
            return local, "local"
    if engine.pull(candidate):
        return candidate, "pulled"
    started = time.monotonic()
    engine.import_debian(ours, suite)
    return ours, f"built from Debian packages in {time.monotonic() - started:.1f} s"


class Docker:
    """The `docker` CLI: output captured and shown only on failure, unless verbose."""

    def __init__(self, verbose: bool = False) -> None:
        self.verbose = verbose
        self.env = {**os.environ, "DOCKER_CLI_HINTS": "false"}

    def run(
        self, args: Sequence[str], *, timeout: float | None = None, stream: bool = False
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                ["docker", *args],
                stdin=subprocess.DEVNULL,
                stdout=None if stream else subprocess.PIPE,
                stderr=None if stream else subprocess.STDOUT,
                text=True,
                errors="replace",
                env=self.env,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise BuildError(f"the docker CLI is not installed; {INSTALL_HINT}") from None

    def check_engine(self) -> None:
        try:
            done = self.run(["info", "--format", "{{.ServerVersion}}"], timeout=ENGINE_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BuildError(
                f"the Docker engine did not answer `docker info` in {ENGINE_TIMEOUT:.0f} s; "
                "is it still starting, or stuck? Its log says why."
            ) from None
        if done.returncode != 0:
            raise BuildError(
                f"cannot reach the Docker engine:\n{tail(done.stdout, 5)}\n"
                f"Start it ({INSTALL_HINT}) or point DOCKER_HOST at a running engine."
            )

    def inspect(self, image: str, template: str) -> str | None:
        done = self.run(["image", "inspect", "--format", template, image])
        return done.stdout.strip() if done.returncode == 0 else None

    def image_id(self, image: str) -> str | None:
        return self.inspect(image, "{{.Id}}") or None

    def require_id(self, image: str) -> str:
        found = self.image_id(image)
        if found is None:
            raise BuildError(f"image {image} disappeared while the images were being built")
        return found

    def labels(self, image: str) -> dict[str, str]:
        raw = self.inspect(image, "{{json .Config.Labels}}")
        decoded = json.loads(raw) if raw else None
        return {str(k): str(v) for k, v in decoded.items()} if isinstance(decoded, dict) else {}

    def pull(self, image: str) -> bool:
        try:
            return self.run(["pull", "--quiet", image], timeout=PULL_TIMEOUT).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def build_argv(self, target: Target, labels: Mapping[str, str], no_cache: bool) -> list[str]:
        args = ["build", "--force-rm", "--tag", target.image]  # no leftovers from failed steps
        args += [f"--build-arg={k}={v}" for k, v in sorted(target.build_args.items())]
        args += [f"--label={k}={v}" for k, v in sorted(labels.items())]
        args += ["--no-cache"] if no_cache else []
        args += ["--target", target.stage] if target.stage else []
        args += ["--file", str(target.dockerfile)] if target.dockerfile else []
        return [*args, str(target.context)]

    def build(self, target: Target, labels: Mapping[str, str], no_cache: bool) -> None:
        done = self.run(self.build_argv(target, labels, no_cache), stream=self.verbose)
        if done.returncode != 0:
            shown = "" if self.verbose else f"; last lines of its output:\n{tail(done.stdout)}"
            raise BuildError(f"`docker build` of {target.image} failed{shown}")

    def run_in(self, image: str, command: Sequence[str]) -> str:
        argv = ["run", "--rm", "--network", "none", image, *command]
        try:
            done = self.run(argv, timeout=VERSION_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise BuildError(f"`{' '.join(command)}` in {image} did not finish") from None
        if done.returncode != 0:
            raise BuildError(f"`{' '.join(command)}` failed in {image}:\n{tail(done.stdout)}")
        return done.stdout

    def remove(self, image_id: str | None) -> None:
        # Best effort: a container may still use it; `docker image prune` gets it later.
        if image_id:
            self.run(["image", "rm", image_id])

    def import_debian(self, tag: str, suite: str = DEBIAN_SUITE) -> None:
        """Build a minimal Debian `suite` with mmdebstrap and `docker import` it as `tag`."""
        mmdebstrap = shutil.which("mmdebstrap")
        if mmdebstrap is None:
            raise BuildError(
                "no Debian base image here, none to pull, and no mmdebstrap to build one: "
                "run `sudo apt-get install -y mmdebstrap`, or pass --base-image IMAGE "
                f"(or set {BASE_IMAGE_ENV}) naming a Debian {suite} image you have."
            )
        strap_argv = [mmdebstrap, "--variant=minbase", "--quiet", *DPKG_EXCLUDES]
        if MERGED_USR_HOOK.is_dir():
            strap_argv.append(f"--hook-dir={MERGED_USR_HOOK}")
        strap_argv += [suite, "-", *debian_sources(suite)]
        changes = [f"--change={change}" for change in IMPORT_CHANGES]
        print(f"building {tag} from Debian packages (mmdebstrap, ~30 s)", file=sys.stderr)
        with tempfile.TemporaryFile("w+") as log:
            strap = subprocess.Popen(
                strap_argv, stdout=subprocess.PIPE, stderr=None if self.verbose else log
            )
            assert strap.stdout is not None
            try:
                imported = subprocess.Popen(
                    ["docker", "import", *changes, "-", tag],
                    stdin=strap.stdout,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    env=self.env,
                )
            finally:
                strap.stdout.close()  # only the importer reads it now
            import_output, _ = imported.communicate()
            strap_status = strap.wait()
            log.seek(0)
            strap_output = log.read()
        # Either side failing breaks the other (truncated tar, broken pipe): show both.
        problems = []
        if strap_status != 0:
            problems.append(f"mmdebstrap failed (exit {strap_status}):\n{tail(strap_output)}")
        if imported.returncode != 0:
            problems.append(f"`docker import` failed:\n{tail(import_output)}")
        if problems:
            raise BuildError("\n".join(problems))


@dataclass(frozen=True)
class Outcome:
    """What became of one image: `built` (or relabelled) or already `current`."""

    image: str
    built: bool
    line: str


def ensure_image(docker: Docker, target: Target, parents: Sequence[str], force: bool) -> Outcome:
    """Build `target` unless it is current; say what happened in one line."""
    stage = {"--target": target.stage} if target.stage else {}
    digest = inputs_hash(target.context, {**target.build_args, **stage}, parents, target.dockerfile)
    labels = docker.labels(target.image)
    wants_version, wants_packages = bool(target.version_command), bool(target.packages_command)
    action = decide(labels, digest, wants_version, force, wants_packages)
    version = labels.get(VERSION_LABEL, "")
    packages = labels.get(PACKAGES_LABEL, "")
    started = time.monotonic()
    previous = docker.image_id(target.image) if labels.get(INPUTS_LABEL) else None
    if action == "build":
        print(f"building {target.image} ...", file=sys.stderr, flush=True)
        docker.build(target, {INPUTS_LABEL: digest}, no_cache=force)
    if action != "skip" and (wants_version or wants_packages):
        unlabelled = docker.image_id(target.image)
        facts = {INPUTS_LABEL: digest}
        if wants_version:
            version = parse_version(docker.run_in(target.image, target.version_command))
            facts[VERSION_LABEL] = version
        if wants_packages:
            packages = parse_packages(docker.run_in(target.image, target.packages_command))
            facts[PACKAGES_LABEL] = packages
        # Same build, more labels: every step is cached, so this is instant.
        docker.build(target, facts, no_cache=False)
        if unlabelled not in (previous, docker.image_id(target.image)):
            docker.remove(unlabelled)
    if previous and previous != docker.image_id(target.image):
        docker.remove(previous)  # an image this tool built, now replaced
    shown = _facts(version, packages)
    if action == "skip":
        return Outcome(target.image, False, f"{target.image}: up to date{shown}")
    line = f"{target.image}: built in {time.monotonic() - started:.1f} s{shown}"
    return Outcome(target.image, True, line)


def _facts(version: str, packages: str) -> str:
    """E.g. ` (version 3.11.2, 10 packages)`; empty when there is neither."""
    facts = [f"version {version}"] if version else []
    with contextlib.suppress(ValueError, TypeError):
        if packages:
            facts.append(f"{len(json.loads(packages))} packages")
    return f" ({', '.join(facts)})" if facts else ""


@dataclass
class Tally:
    """The images of one run, by what became of them."""

    built: list[str] = field(default_factory=list)
    current: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    not_attempted: int = 0  # languages left out because the supervisor failed

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_attempted

    def add(self, outcome: Outcome) -> None:
        (self.built if outcome.built else self.current).append(outcome.image)

    def summary(self, seconds: float) -> str:
        """E.g. `images: 13 ready (2 built, 11 up to date, 0 failed) in 4.2 s`."""
        failed = f"{len(self.failed)} failed"
        if self.failed:
            failed += ": " + ", ".join(self.failed)
        if self.not_attempted:
            failed += f"; {self.not_attempted} not attempted"
        ready = len(self.built) + len(self.current)
        counts = f"{len(self.built)} built, {len(self.current)} up to date, {failed}"
        return f"images: {ready} ready ({counts}) in {seconds:.1f} s"


def select(catalog: Catalog, wanted: Sequence[str]) -> list[LanguageSpec]:
    """Every version of the languages `wanted` (all of them if none is named)."""
    try:
        return catalog.only(wanted).runtimes()
    except UnknownLanguage as error:
        raise BuildError(error.problem) from None


class Progress:
    """One line per image as it is done, numbered (`[3/30] ...`), from any thread."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self._lock = threading.Lock()

    def report(self, line: str, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            print(
                f"[{self.done}/{self.total}] {line}",
                file=sys.stderr if failed else sys.stdout,
                flush=True,
            )


def _targets(spec: LanguageSpec, base: str, options: Options) -> list[Target]:
    """A language's image, then its installer's (a stage of the same Dockerfile)."""
    supervisor_image = options.images.supervisor
    args = {"BASE_IMAGE": base, "SUPERVISOR_IMAGE": supervisor_image}
    if declares_arg(spec.dockerfile, EXTRA_CA_ARG):
        args[EXTRA_CA_ARG] = extra_ca_certs()
    if declares_arg(spec.dockerfile, SUITE_ARG):
        args[SUITE_ARG] = spec.suite or DEBIAN_SUITE
    if declares_arg(spec.dockerfile, PACKAGES_ARG):
        args[PACKAGES_ARG] = " ".join(spec.debian_packages)
    image = image_for(spec, options.images)
    shared = None if spec.dockerfile.parent == spec.directory else spec.dockerfile
    targets = [
        Target(
            image,
            spec.directory,
            args,
            spec.version_command,
            spec.packages_command,
            dockerfile=shared,
        )
    ]
    if spec.installer:
        installer = installer_image_for(spec, options.images)
        targets.append(
            Target(installer, spec.directory, args, stage=INSTALLER_STAGE, dockerfile=shared)
        )
    return targets


def _build_language(
    docker: Docker,
    spec: LanguageSpec,
    targets: Sequence[Target],
    parents: Sequence[str],
    options: Options,
    tally: Tally,
    progress: Progress,
) -> None:
    for target in targets:
        try:
            if not spec.dockerfile.is_file():
                raise BuildError(f"{spec.dockerfile} is missing")
            outcome = ensure_image(docker, target, parents, options.force)
        except BuildError as error:
            # One broken language must not hold back the others.
            progress.report(f"{target.image}: FAILED: {error}", failed=True)
            tally.failed.append(target.image)
        else:
            progress.report(outcome.line)
            tally.add(outcome)


def _base_images(docker: Docker, options: Options, suites: set[str]) -> dict[str, tuple[str, str]]:
    """Suite -> (base image, its id): the images' own suite always (the supervisor is
    built on it; --base-image names it), and each other suite a version is built on."""
    bases = {}
    for suite in sorted(suites | {DEBIAN_SUITE}):
        explicit = options.base_image if suite == DEBIAN_SUITE else None
        base, origin = resolve_base_image(docker, explicit, suite)
        bases[suite] = (base, docker.require_id(base))
        print(f"base image: {base} ({origin})", flush=True)
    return bases


def build_all(options: Options, docker: Docker, catalog: Catalog) -> Tally:
    """Build everything asked for, `options.jobs` languages at once; a failed image
    is counted, the others still built.

    Raises BuildError only for what stops every image (no engine, no base image).
    """
    specs = select(catalog, options.languages)
    docker.check_engine()
    bases = _base_images(docker, options, {spec.suite or DEBIAN_SUITE for spec in specs})
    base, base_id = bases[DEBIAN_SUITE]
    tally = Tally()
    supervisor_image = options.images.supervisor
    supervisor = Target(supervisor_image, options.supervisor_dir, {"BASE_IMAGE": base})
    work = [(spec, _targets(spec, bases[spec.suite or DEBIAN_SUITE][0], options)) for spec in specs]
    progress = Progress(1 + sum(len(targets) for _, targets in work))
    try:
        outcome = ensure_image(docker, supervisor, [base_id], options.force)
        progress.report(outcome.line)
        tally.add(outcome)
        supervisor_id = docker.require_id(supervisor_image)
    except BuildError as error:
        # Every language image copies the supervisor in: none can be built.
        progress.report(f"{supervisor_image}: FAILED: {error}", failed=True)
        tally.failed.append(supervisor_image)
        tally.not_attempted = len(specs)
        return tally
    pool = ThreadPoolExecutor(max_workers=options.jobs, thread_name_prefix="image-build")
    try:
        futures = [
            pool.submit(
                _build_language,
                docker,
                spec,
                targets,
                [bases[spec.suite or DEBIAN_SUITE][1], supervisor_id],
                options,
                tally,
                progress,
            )
            for spec, targets in work
        ]
        for future in futures:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return tally


def build(options: Options, docker: Docker, catalog: Catalog) -> int:
    """Build, print the summary line; the exit status: 0 when every image is ready, else 1."""
    started = time.monotonic()
    try:
        tally = build_all(options, docker, catalog)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        return 130
    print(tally.summary(time.monotonic() - started), flush=True)
    return 0 if tally.ok else 1


def run_build(args: argparse.Namespace) -> int:
    """The handler of `images build`."""
    try:
        options = options_from(args)
        extra = [options.languages_dir] if options.languages_dir else []
        catalog = Catalog.load(extra_dirs=extra)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 2
    return build(options, Docker(options.verbose), catalog)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
