"""Which languages this server serves: the built-ins, an operator's own, a subset.

A server need not serve every language (one missing image would otherwise
keep the whole server NOT_SERVING), and operators add languages without
touching the installed package: a folder of language folders in the
built-ins' format (`spec.toml` + `Dockerfile`). The server's one Catalog is
built here, and everything else (requests, pools, the backend, readiness,
`ListRuntimes`) sees only the languages it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from codebeaker.runtimes.catalog import Catalog
from codebeaker.runtimes.errors import UnknownLanguage
from codebeaker.server.options import setting


@dataclass(frozen=True)
class CatalogConfig:
    languages: str = setting(
        "", "languages to serve, ids or aliases, e.g. python,c; empty: all (readiness: these)"
    )
    languages_dir: str = setting(
        "",
        "folder of extra language folders (a spec.toml each, a Dockerfile unless it names "
        "debian_packages); empty: none",
    )

    def catalog(self) -> Catalog:
        """The served languages; a ValueError naming the setting (and the folder)."""
        extra = [Path(self.languages_dir).expanduser()] if self.languages_dir else []
        try:
            every = Catalog.load(extra_dirs=extra)
        except ValueError as error:
            raise ValueError(f"languages_dir: {error}") from None
        names = [name.strip() for name in self.languages.split(",") if name.strip()]
        try:
            return every.only(names)
        except UnknownLanguage as error:
            raise ValueError(f"languages: {error.problem}") from None
