"""Names Docker objects carry: image names and the labels on images and containers.

Small and import-free on purpose: the image builder, the sandbox and the tests
all name images and read labels, and none of them should pull in the others.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codebeaker.runtimes.catalog import LanguageSpec

IMAGE_PREFIX = "codebeaker/"
"""The default prefix: runtime images are `codebeaker/supervisor` and `codebeaker/<id>`."""
SUPERVISOR = "supervisor"

# Docker's reference grammar (distribution/reference), the name part: an
# optional registry host, then lowercase path components.
_DOMAIN_PART = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = re.compile(
    rf"(?:{_DOMAIN_PART}(?:\.{_DOMAIN_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*"
)
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

INPUTS_LABEL = "io.codebeaker.inputs"
"""Label on every image the builder makes: the hash of everything it was built from."""
VERSION_LABEL = "io.codebeaker.version"
"""Label on every language image: the runtime's version as its `version_command` prints it."""
PACKAGES_LABEL = "io.codebeaker.packages"
"""Label on a language image whose spec has a `packages_command`: the packages baked into
the image and their versions, as a JSON object of name to version (compact, sorted)."""

OWNER_LABEL = "io.codebeaker.owner"
"""Label on every sandbox container: the server instance that owns it (orphan cleanup)."""
EXECUTION_LABEL = "io.codebeaker.execution"
"""Label on a sandbox container: the execution it runs."""
LANGUAGE_LABEL = "io.codebeaker.language"
"""Label on a sandbox container: the language id of its image."""
SESSION_LABEL = "io.codebeaker.session"
"""Label on a session's container: the session's id (DESIGN.md § SessionService)."""
PACKAGE_SET_LABEL = "io.codebeaker.package-set"
"""Label on a sandbox container with request-time packages: the cache key of the
set mounted in it (the cache never evicts a set a container still mounts)."""
INSTALLER_LABEL = "io.codebeaker.installer"
"""Label on an installer container: the language whose packages it installs."""
INSTALLER_STAGE = "installer"
"""The build stage of a language's Dockerfile that is its trusted package installer."""


@dataclass(frozen=True)
class ImageNames:
    """How the runtime images are named: `<prefix><name>[:<tag>]`, the same for the
    supervisor and every language, so the builder and the server agree."""

    prefix: str = IMAGE_PREFIX
    tag: str = ""  # empty: no tag, which Docker reads as `latest`

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.prefix + SUPERVISOR):
            raise ValueError(
                f"image_prefix {self.prefix!r} does not make Docker image names "
                "(e.g. codebeaker/, registry.example:5000/team/cb-)"
            )
        if self.tag and not _TAG.fullmatch(self.tag):
            raise ValueError(f"image_tag {self.tag!r} is not a Docker tag (e.g. 2026.12)")

    def named(self, name: str) -> str:
        return f"{self.prefix}{name}:{self.tag}" if self.tag else f"{self.prefix}{name}"

    @property
    def supervisor(self) -> str:
        return self.named(SUPERVISOR)


def packages_from_label(value: str) -> dict[str, str]:
    """The packages a `PACKAGES_LABEL` value names (name -> version); empty for an
    absent or malformed label (an image built by hand, an older builder)."""
    try:
        found = json.loads(value) if value else {}
    except ValueError:
        return {}
    if not isinstance(found, dict):
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, str)}


def image_for(spec: LanguageSpec, names: ImageNames = ImageNames()) -> str:
    """The image a language's version runs in: `codebeaker/<key>` (`python`, or
    `python-bookworm` for a version besides the default) unless named otherwise."""
    return names.named(spec.key)


def installer_image_for(spec: LanguageSpec, names: ImageNames = ImageNames()) -> str:
    """The image that installs request-time packages for a language's version: its
    Dockerfile's `installer` stage, `codebeaker/<key>-installer`."""
    return names.named(f"{spec.key}-{INSTALLER_STAGE}")
