"""Our programs, run the way this checkout's runtimes run them.

The run command comes from the language's spec.toml (e.g. Node.js started from
the image's startup snapshot), so the raw engine, the image's bare interpreter
and the peers all run the interpreter exactly as CodeBeaker does.
"""

from __future__ import annotations

from dataclasses import replace

from bench.programs import PROGRAMS, Program
from codebeaker.runtimes.catalog import Catalog


def served_programs(languages: list[str]) -> tuple[dict[str, Program], str]:
    """The programs with their runtime's `run`; falls back to `interpreter file`."""
    try:
        catalog = Catalog.load()
        found = {lang: replace(PROGRAMS[lang], run=catalog.resolve(lang).run) for lang in languages}
    except Exception as error:  # the bench still runs, with a plain command
        return {lang: PROGRAMS[lang] for lang in languages}, f"runtime specs unreadable: {error}"
    return found, ""
