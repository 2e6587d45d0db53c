"""What every host looks like to the program, whichever backend made it.

The program starts in `WORKDIR` (a size-capped tmpfs holding its files) with
an environment written out in full: a fixed base, its language's variables and
the caller's. Nothing of the server's or the host's environment leaks in.
"""

from __future__ import annotations

from collections.abc import Mapping

from codebeaker.runtimes.catalog import LanguageSpec

WORKDIR = "/workspace"
# Where a request's package set is mounted, read-only (`[installer]` in spec.toml).
PACKAGES_MOUNT = "/opt/codebeaker/packages"
SANDBOX_UID = 65534
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": WORKDIR,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
}


def program_env(spec: LanguageSpec, requested: Mapping[str, str]) -> dict[str, str]:
    """The program's whole environment: the base, the language's, the caller's."""
    env = dict(BASE_ENV)
    env.update(spec.env)
    env.update(requested)
    return env
