"""`python -m bench.languages`: every language's hello world, cold and warm.

For each language in runtimes/languages/, and each of its versions, the
example `tests/languages/<id>/hello.*` is run through `Execute` on a server
with reusable hosts and on one without (a container created on the request
path for every call), and, as the floor measured in
the same run, the language's own compile and run commands (from its
spec.toml) in a loop inside one already running container of its image, where
only the commands are timed. Figures are caller-side latencies; the compile
and run times the sandbox reported are kept beside them. A version is asked for
exactly, as its image's label records it; figures are kept per runtime key
(`python`, `python-bookworm`).
"""

from __future__ import annotations

import argparse
import base64
import json
import shlex
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc

from bench.engine import api_client
from bench.programs import BENCH_LABEL
from bench.server import ServerProcess
from bench.stats import Summary, collect
from codebeaker.runtimes.catalog import Catalog, LanguageSpec
from codebeaker.runtimes.docker.labels import VERSION_LABEL, image_for
from codebeaker.v1 import execution_pb2 as pb
from codebeaker.v1 import execution_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "tests" / "languages"
RESULTS = ROOT / "bench" / "results" / "languages.json"
# Each language's hello-world figures for the README's language table, kept in git
# (`make readme` renders them; a run updates the languages it measured).
RECORDED = ROOT / "bench" / "recorded" / "languages.json"
HELLO = b"Hello, World!\n"
CALL_TIMEOUT = 120.0


@dataclass(frozen=True)
class Row:
    language: str  # the runtime's key: the language id, or id-version for a second version
    bare: Summary
    warm: Summary
    cold: Summary
    compile_ms: float  # median compile wall time the sandbox reported (warm runs)
    run_ms: float  # median program wall time the sandbox reported (warm runs)


def hello_source(spec: LanguageSpec) -> bytes:
    (path,) = (EXAMPLES / spec.id).glob("hello.*")
    return path.read_bytes()


def _bare_script(spec: LanguageSpec, total: int) -> str:
    """A shell loop: each iteration compiles and runs the hello world in a fresh
    folder (no build output kept from the last), timing only the commands."""
    source = base64.b64encode(hello_source(spec)).decode()
    name = shlex.quote(spec.file_name)
    steps = []
    if spec.compiled:
        steps.append(shlex.join(spec.compile_command(spec.file_name, [spec.file_name])))
    steps.append(shlex.join(spec.command(spec.file_name, ())) + " > out.txt")
    body = " && ".join(steps)
    return (
        f"echo {source} | base64 -d > /tmp/hello.src && "
        f"for i in $(seq {total}); do "
        f"mkdir /workspace/r$i && cd /workspace/r$i && cp /tmp/hello.src {name} && "
        f"t0=$(date +%s%N); {body} || exit 1; t1=$(date +%s%N); "
        f"echo $(( (t1 - t0) / 1000 )); cd /workspace && rm -rf /workspace/r$i; done"
    )


def measure_bare(spec: LanguageSpec, run_id: str, warmup: int, runs: int) -> Summary:
    """The language's own commands, timed inside one running container of its image."""
    api = api_client()
    env = {"HOME": "/workspace", "TMPDIR": "/tmp", "LANG": "C.UTF-8", **spec.env}
    created = api.create_container(
        image_for(spec),
        command=["sh", "-c", _bare_script(spec, warmup + runs)],
        working_dir="/workspace",
        environment=env,
        labels={BENCH_LABEL: run_id},
        network_disabled=True,
        host_config=api.create_host_config(
            network_mode="none",
            tmpfs={"/workspace": "exec,uid=65534,gid=65534,size=64m", "/tmp": "size=64m"},
            nano_cpus=1_000_000_000,
        ),
    )
    container = created["Id"]
    try:
        api.start(container)
        status = api.wait(container, timeout=600)
        logs = api.logs(container, stdout=True, stderr=True).decode(errors="replace")
        if status.get("StatusCode") != 0:
            raise RuntimeError(f"{spec.key}: bare loop failed: {logs[-500:]}")
        samples = [int(line) / 1000 for line in logs.split() if line.isdigit()]
        return Summary(tuple(samples[warmup:]))
    finally:
        api.remove_container(container, force=True)
        api.close()


def _millis(duration: object) -> float:
    seconds = getattr(duration, "seconds", 0)
    nanos = getattr(duration, "nanos", 0)
    return float(seconds * 1e3 + nanos / 1e6)


def measure_service(
    stub: pb_grpc.ExecutionServiceStub,
    spec: LanguageSpec,
    warmup: int,
    runs: int,
    gap: float,
    reported: list[tuple[float, float]] | None = None,
) -> Summary:
    asked = pb.ExecutionSpec(language=spec.id, version=spec.version, source=hello_source(spec))
    request = pb.ExecuteRequest(spec=asked)

    def sample() -> float:
        started = time.perf_counter()
        result = stub.Execute(request, timeout=CALL_TIMEOUT).result
        spent = (time.perf_counter() - started) * 1e3
        if result.status != pb.EXECUTION_STATUS_OK or result.stdout != HELLO:
            raise RuntimeError(f"{spec.key}: {result.message} {result.compile.stderr[:200]!r}")
        if reported is not None:
            reported.append((_millis(result.compile.wall_time), _millis(result.wall_time)))
        return spent

    return collect(sample, warmup=warmup, runs=runs, gap=gap)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2] if ordered else 0.0


def with_server(
    flags: list[str], run_id: str, name: str, body: Callable[[pb_grpc.ExecutionServiceStub], None]
) -> None:
    log = ROOT / "bench" / "results" / f"languages-{name}.log"
    with ServerProcess(f"bench-{run_id}-{name}", flags, log) as server:
        channel = grpc.insecure_channel(server.address)
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
            body(pb_grpc.ExecutionServiceStub(channel))
        finally:
            channel.close()


def render(rows: list[Row]) -> str:
    lines = [
        "| language | in-image compile+run, ms | warm Execute, ms | / floor | cold Execute, ms "
        "| / floor | compile (sandbox), ms | run (sandbox), ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        floor = row.bare.median
        warm, cold = row.warm.median, row.cold.median
        lines.append(
            f"| {row.language} | {floor:.1f} | {warm:.1f} | {warm / floor:.2f} "
            f"| {cold:.1f} | {cold / floor:.2f} "
            f"| {row.compile_ms:.1f} | {row.run_ms:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.languages")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.5, help="seconds between calls")
    parser.add_argument("--languages", default="", help="comma-separated ids (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--record", type=Path, default=RECORDED, help="figures for the README (merged)"
    )
    args = parser.parse_args(argv)
    wanted = [n for n in args.languages.split(",") if n]
    specs = with_image_versions(Catalog.load().only(wanted).runtimes())
    run_id = uuid.uuid4().hex[:10]
    bare = {s.key: measure_bare(s, run_id, args.warmup, args.runs) for s in specs}
    warm: dict[str, Summary] = {}
    cold: dict[str, Summary] = {}
    reported: dict[str, list[tuple[float, float]]] = {s.key: [] for s in specs}

    def run_warm(stub: pb_grpc.ExecutionServiceStub) -> None:
        for s in specs:
            warm[s.key] = measure_service(
                stub, s, args.warmup, args.runs, args.gap, reported[s.key]
            )

    def run_cold(stub: pb_grpc.ExecutionServiceStub) -> None:
        for s in specs:
            cold[s.key] = measure_service(stub, s, 1, max(args.runs // 2, 3), args.gap)

    # Warm: reusable hosts (the default), each language's after its warm-up calls.
    # Cold: a container created and started for every call, no pool.
    with_server([], run_id, "warm", run_warm)
    with_server(["--isolation", "container", "--pool-size", "0"], run_id, "cold", run_cold)
    rows = [
        Row(
            s.key,
            bare[s.key],
            warm[s.key],
            cold[s.key],
            _median([c for c, _ in reported[s.key]]),
            _median([r for _, r in reported[s.key]]),
        )
        for s in specs
    ]
    print(render(rows))
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    document = {
        "started": started,
        "languages": {
            row.language: {
                "bare": row.bare.to_json(),
                "warm": row.warm.to_json(),
                "cold": row.cold.to_json(),
                "compile_ms": row.compile_ms,
                "run_ms": row.run_ms,
            }
            for row in rows
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2) + "\n")
    record(rows, {s.key: s.version for s in specs}, started, args.record)
    return 0


def with_image_versions(specs: list[LanguageSpec]) -> list[LanguageSpec]:
    """`specs` with the versions their images' labels record (what the server reads)."""
    api = api_client()
    try:
        labelled = []
        for spec in specs:
            inspected: dict[str, Any] = api.inspect_image(image_for(spec))  # type: ignore[no-untyped-call]
            labels = inspected["Config"]["Labels"] or {}
            labelled.append(replace(spec, version=labels.get(VERSION_LABEL, "")))
        return labelled
    finally:
        api.close()


def record(rows: list[Row], versions: dict[str, str], started: str, path: Path) -> None:
    """Merge this run's medians into the recorded figures the README shows."""
    recorded = json.loads(path.read_text()) if path.exists() else {}
    for row in rows:
        recorded[row.language] = {
            "version": versions.get(row.language, ""),
            "measured": started[:10],
            "floor_ms": round(row.bare.median, 1),
            "warm_ms": round(row.warm.median, 1),
            "cold_ms": round(row.cold.median, 1),
        }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(sorted(recorded.items())), indent=2) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
