"""Names Docker objects carry: image names and the labels on images and containers.

Small and import-free on purpose: the image builder, the sandbox and the tests
all name images and read labels, and none of them should pull in the others.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from codebeaker.runtimes.catalog import LanguageSpec

IMAGE_PREFIX = "codebeaker/"
"""Every runtime image is `codebeaker/<something>`: the supervisor and each language id."""

INPUTS_LABEL = "io.codebeaker.inputs"
"""Label on every image the builder makes: the hash of everything it was built from."""
VERSION_LABEL = "io.codebeaker.version"
"""Label on every language image: the runtime's version as its `version_command` prints it."""

OWNER_LABEL = "io.codebeaker.owner"
"""Label on every sandbox container: the server instance that owns it (orphan cleanup)."""
EXECUTION_LABEL = "io.codebeaker.execution"
"""Label on a sandbox container: the execution it runs."""
LANGUAGE_LABEL = "io.codebeaker.language"
"""Label on a sandbox container: the language id of its image."""


def image_for(spec: LanguageSpec) -> str:
    """The image a language runs in: `codebeaker/<id>`."""
    return f"{IMAGE_PREFIX}{spec.id}"
