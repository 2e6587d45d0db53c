"""`python -m bench.packages`: request-time packages, installed at the request and found in
the cache, against runs without packages, in one run.

One server (the default hosts and session spares; Python and JavaScript; runc) with an
allow-list, installing from a PyPI simple index and an npm registry this bench serves on
127.0.0.1 (tests/package_index.py: small wheels and tarballs built here, each package with
a dependency of its own; nothing is fetched from off the machine). This machine is shared
and noisy, so every figure has a baseline measured in the same run, interleaved with it
(whose turn is first rotates from round to round), and the report gives ratios:

1. Python: an Execute of `import cbbenchN; print(1)` asking for a set installed already
   (a cache hit: reusable hosts of that set) and for a set not installed yet
   (one new package each round: the install, then the run), against `print(1)` without
   packages (the pooled hosts). The first set is installed before the rounds (the one the
   hits ask for; later hits ask for any installed). The server's Prometheus metrics
   (cache hits and misses, the install histogram) are read before and after, and checked
   against what the bench asked; the index's log shows that a hit fetches nothing.
2. The same for JavaScript with npm packages (`require('cbbenchjsN')`), fewer rounds.
3. CreateSession asking for an installed set (always a cold sandbox: spares carry no
   package set) against CreateSession without packages (from a started spare; a create
   that found none is left out), a few rounds, each session deleted off the clock.

Whatever happens (a failure, Ctrl-C, SIGTERM) every session is deleted, the server
(started with `--end-sessions-on-exit 1`) stopped, its containers (installers included)
swept, and the index, the allow-list and the cache (under the server's state folder)
removed. The report goes to bench/results/packages.json and packages.md.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from bench.packages_report import cache_metrics, execute_ratios, markdown, render, session_ratios
from bench.plan import RESULTS_DIR
from bench.sessions import (
    CALL_TIMEOUT,
    Run,
    SessionServer,
    made_before,
    run_bench,
    wait_for_spare,
)
from bench.sessions_report import figures
from bench.stats import interleaved, timed
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc
from tests.package_index import PackageIndex

OUTPUT = b"1\n"
SPARE_TIMEOUT = 30.0


@dataclass(frozen=True)
class Flavor:
    """One language's packages: `<prefix><i>`, each depending on `<prefix>dep<i>`."""

    language: str
    prefix: str
    plain: str  # the baseline program, without packages
    program: str  # with one package, `{name}`

    def names(self, count: int) -> list[str]:
        return [f"{self.prefix}{i}" for i in range(count)]

    def serve(self, index: PackageIndex, count: int) -> None:
        for name in self.names(count):
            dependency = name.replace(self.prefix, f"{self.prefix}dep", 1)
            if self.language == "python":
                index.add_wheel(dependency, "1.0", {f"{dependency}/__init__.py": "VALUE = 1\n"})
                module = f"from {dependency} import VALUE\n"
                index.add_wheel(
                    name, "1.0", {f"{name}/__init__.py": module}, requires=[f"{dependency}>=1"]
                )
            else:
                index.add_npm(dependency, "1.0.0", {"index.js": "module.exports = 1;\n"})
                module = f"module.exports = require('{dependency}');\n"
                index.add_npm(
                    name, "1.0.0", {"index.js": module}, dependencies={dependency: "^1.0.0"}
                )


FLAVORS = {
    "python": Flavor("python", "cbbench", "print(1)\n", "import {name}; print(1)\n"),
    "javascript": Flavor(
        "javascript", "cbbenchjs", "console.log(1)\n", "require('{name}'); console.log(1)\n"
    ),
}
SERVER_FLAGS = [
    "--languages", ",".join(FLAVORS),
    "--runtime", "runc",
    "--end-sessions-on-exit", "1",
    "--metrics-address", "127.0.0.1:0",
    "--package-install-timeout", "120",
]  # fmt: skip


def say(text: str) -> None:
    print(f"bench.packages: {text}", flush=True)


def allowlist(counts: dict[str, int]) -> str:
    """Every package served, any version (what each depends on comes along unlisted)."""
    lines: list[str] = []
    for language, count in counts.items():
        lines += [f"[{language}]", *(f'{n} = "*"' for n in FLAVORS[language].names(count)), ""]
    return "\n".join(lines)


@dataclass
class Requests:
    """Execute through the stub, without packages, with a set installed already and with
    a new one; what the bench asked of the cache, and what the hits fetched."""

    stub: pb_grpc.ExecutionServiceStub
    index: PackageIndex
    flavor: Flavor
    fresh: list[str]  # packages not asked for yet, the next first
    installed: list[str] = field(default_factory=list)
    hits: int = 0
    installs: int = 0
    install_seconds: float = 0.0  # every install request's wall time, all counted
    fetched_by_hits: int = 0

    def execute(self, source: str, packages: Sequence[str] = ()) -> None:
        asked = [pb.PackageRequest(name=name) for name in packages]
        spec = pb.ExecutionSpec(language=self.flavor.language, source=source.encode())
        spec.packages.extend(asked)
        result = self.stub.Execute(pb.ExecuteRequest(spec=spec), timeout=CALL_TIMEOUT).result
        if result.status != pb.EXECUTION_STATUS_OK or result.stdout != OUTPUT:
            status = pb.ExecutionStatus.Name(result.status)
            raise RuntimeError(f"Execute {packages}: {status} {result.stderr[-300:]!r}")

    def with_package(self, name: str) -> None:
        self.execute(self.flavor.program.format(name=name), [name])

    def plain(self) -> None:
        self.execute(self.flavor.plain)

    def hit(self) -> None:
        if not self.installed:
            raise RuntimeError("no set is installed yet")
        name = self.installed[self.hits % len(self.installed)]
        self.hits += 1
        fetched = len(self.index.requested)
        try:
            self.with_package(name)
        finally:
            self.fetched_by_hits += len(self.index.requested) - fetched

    def install(self) -> None:
        if not self.fresh:
            raise RuntimeError("every package served has been asked for")
        name = self.fresh.pop(0)
        self.installs += 1
        began = time.perf_counter()
        try:
            self.with_package(name)
        finally:
            self.install_seconds += time.perf_counter() - began
        self.installed.append(name)


def package_count(runs: int, warmup: int) -> int:
    """One a round, warm-up rounds included, and the first, installed before them."""
    return runs + warmup + 1


# ---------- 1, 2. Execute ----------


def measure_execute(
    run: Run, server: SessionServer, index: PackageIndex, flavor: Flavor, runs: int
) -> dict[str, Any]:
    args = run.args
    channel = grpc.insecure_channel(server.process.address)
    calls = Requests(
        pb_grpc.ExecutionServiceStub(channel),
        index,
        flavor,
        flavor.names(package_count(runs, args.warmup)),
    )
    try:
        before = server.metrics()
        first = timed(calls.install)()
        kinds: dict[str, Callable[[], None]] = {
            "no_packages": calls.plain,
            "hit": calls.hit,
            "install": calls.install,
        }
        collected = interleaved(
            kinds,
            warmup=args.warmup,
            runs=runs,
            gap=args.gap,
            each_round=server.process.check_alive,
        )
        after = server.metrics()
    finally:
        channel.close()
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out |= {
        "first_install_ms": round(first, 3),
        "program": flavor.program.format(name=f"{flavor.prefix}N"),
        "plain_program": flavor.plain,
        "installed": calls.installed,
        "index_requests_during_hits": calls.fetched_by_hits,
    }
    out["ratios"] = execute_ratios(out)
    out["metrics"] = cache_metrics(before, after, calls.hits, calls.installs, calls.install_seconds)
    return out


# ---------- 3. CreateSession ----------


def measure_sessions(run: Run, server: SessionServer, package: str) -> dict[str, Any]:
    """CreateSession with `package` (installed already) against one without, from a spare;
    the session of each call is checked (its container made before the call began: from
    a spare) and deleted before the next call, and the spare is back, off the clock."""
    args, engine = run.args, run.engine
    rounds = 0
    made: list[tuple[str, str, float, bool]] = []  # kind, name, began, recorded
    from_spare: dict[str, list[bool]] = {"with_packages": [], "from_spare": []}
    waited_in_vain = 0

    def each_round() -> None:
        nonlocal rounds
        rounds += 1
        server.process.check_alive()

    def settle(_: str) -> None:
        nonlocal waited_in_vain
        for kind, name, began, recorded in made:
            spare = made_before(server, engine, name, began)
            server.delete(name)
            if recorded:
                from_spare[kind].append(spare)
        made.clear()
        waited_in_vain += not wait_for_spare(server, engine, 0, SPARE_TIMEOUT)

    def create(kind: str, packages: Sequence[str]) -> Callable[[], None]:
        def call() -> None:
            began = time.time()
            name = server.create(packages=packages)
            made.append((kind, name, began, rounds > args.warmup))

        return call

    # Spares are kept for the languages sessions were created for: one first.
    server.delete(server.create())
    before = server.metrics()
    kinds = {
        "with_packages": create("with_packages", [package]),
        "from_spare": create("from_spare", ()),
    }
    collected = interleaved(
        kinds,
        warmup=args.warmup,
        runs=args.session_runs,
        gap=args.gap,
        each_round=each_round,
        before_each=settle,
    )
    settle("")  # the last one checked and deleted (on a failure, the server's close does)
    after = server.metrics()
    # A create without packages that found no spare ready is not what is measured.
    spare = collected["from_spare"]
    flags = from_spare["from_spare"]
    spare.samples = [ms for ms, ok in zip(spare.samples, flags, strict=True) if ok]
    out: dict[str, Any] = {kind: figures(c) for kind, c in collected.items()}
    out |= {
        "package": package,
        "spare_served_cold": flags.count(False),
        "packages_from_spare": from_spare["with_packages"].count(True),
        "spare_not_back_within_timeout": waited_in_vain,
    }
    out["ratios"] = session_ratios(out)
    asked = args.warmup + args.session_runs
    out["metrics"] = cache_metrics(before, after, asked, 0)
    return out


# ---------- the run ----------


def run_phases(run: Run, document: dict[str, Any]) -> None:
    args = run.args
    runs = {"python": args.runs, "javascript": args.js_runs}
    counts = {language: package_count(n, args.warmup) for language, n in runs.items()}
    with tempfile.TemporaryDirectory(prefix="cb-bench-packages-index-") as root:
        allowed = Path(root) / "allowlist.toml"
        allowed.write_text(allowlist(counts))
        with PackageIndex(Path(root) / "index") as index:
            for language, count in counts.items():
                FLAVORS[language].serve(index, count)
            flags = [
                *SERVER_FLAGS,
                "--package-allowlist", str(allowed),
                "--package-index", index.pypi_url,
                "--npm-registry", index.npm_url,
            ]  # fmt: skip
            run.phase = "server"
            server = run.start_server("server", flags)
            document["server"] = (
                "the default hosts and session spares, the package cache under its state "
                "folder, " + " ".join(SERVER_FLAGS) + " and an index on 127.0.0.1"
            )
            try:
                for language, flavor in FLAVORS.items():
                    run.phase = f"execute {language}"
                    say(
                        f"{language}: no packages, a cache hit and an install, "
                        f"{runs[language]} of each, interleaved"
                    )
                    document[language] = measure_execute(run, server, index, flavor, runs[language])
                run.phase = "sessions"
                say(f"sessions: with packages and from a spare, {args.session_runs} of each")
                installed = document["python"]["installed"]
                if installed:
                    document["sessions"] = measure_sessions(run, server, installed[0])
                else:
                    run.notes.append("no Python set was installed: sessions not measured")
            finally:
                server.close()  # before its index and allow-list go


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.packages")
    parser.add_argument("--runs", type=int, default=8, help="Python rounds (a new install each)")
    parser.add_argument("--js-runs", type=int, default=4, help="JavaScript rounds")
    parser.add_argument("--session-runs", type=int, default=5, help="CreateSession rounds")
    parser.add_argument("--warmup", type=int, default=1, help="unrecorded rounds first")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds before each call")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: few of everything (flags still count)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "packages.json")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(runs=2, js_runs=1, session_runs=2)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return run_bench(parse(argv), "packages", run_phases, render, markdown)


if __name__ == "__main__":
    raise SystemExit(main())
