"""What every phase of a run shares: its context and how it reports as it goes."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from bench.bare import Interpreter
from bench.programs import Program
from bench.stats import Measurement, Summary


@dataclass
class Context:
    run_id: str
    started: float  # wall clock, for the epicbox sweep
    instances: list[str] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    current_phase: str = "start"
    interpreters: dict[str, Interpreter | None] = field(default_factory=dict)
    programs: dict[str, Program] = field(default_factory=dict)  # as the runtimes run them


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


def show(figure: str, language: str, found: Measurement) -> None:
    if isinstance(found, Summary) and found.ok:
        errors = f", {found.errors} errors" if found.errors else ""
        say(
            f"  {figure} [{language}]: median {found.median:.1f} ms, p95 {found.p95:.1f} ms{errors}"
        )
    elif isinstance(found, Summary):
        say(f"  {figure} [{language}]: every run failed: {found.error_messages}")
    else:
        say(f"  {figure} [{language}]: n/a: {found.reason}")
