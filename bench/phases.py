"""The run itself, phase by phase, in an order that keeps them from disturbing each other.

bare interpreter -> raw engine -> CodeBeaker, pool disabled -> CodeBeaker, warm
pool (latency, first output, throughput) -> raw engine churn -> peers. Each
server is stopped before the next phase; nothing of one phase runs in the next.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.bare import Interpreter, measure_bare
from bench.engine import measure_churn, measure_engine
from bench.image_bare import measure_image_bare
from bench.peers import CASES, run_peer
from bench.plan import RESULTS_DIR, Plan
from bench.programs import Program
from bench.results import Results
from bench.server import ServerError, ServerGone, ServerProcess
from bench.service import Service, measure_execute, measure_first_output, measure_throughput
from bench.stats import Measurement, Summary, Unavailable
from bench.throughput import Throughput
from codebeaker.v1 import execution_pb2 as pb

POOL_FILL_TIMEOUT = 60.0


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


def _show(figure: str, language: str, found: Measurement) -> None:
    if isinstance(found, Summary) and found.ok:
        errors = f", {found.errors} errors" if found.errors else ""
        say(
            f"  {figure} [{language}]: median {found.median:.1f} ms, p95 {found.p95:.1f} ms{errors}"
        )
    elif isinstance(found, Summary):
        say(f"  {figure} [{language}]: every run failed: {found.error_messages}")
    else:
        say(f"  {figure} [{language}]: n/a: {found.reason}")


def _phase(ctx: Context, name: str, body: Callable[[], None]) -> None:
    say(name)
    ctx.current_phase = name
    start = time.monotonic()
    try:
        body()
    finally:
        ctx.phase_seconds[name] = round(time.monotonic() - start, 1)


def run_all(plan: Plan, results: Results, ctx: Context) -> None:
    programs = [ctx.programs[lang] for lang in plan.languages]

    def bare() -> None:
        for program in programs:
            found = ctx.interpreters.get(program.language)
            value = measure_bare(program, found, plan.bare.warmup, plan.bare.runs)
            results.put("bare", program.language, value)
            _show("bare", program.language, value)

    def bare_image() -> None:
        for program in programs:
            value = measure_image_bare(program, ctx.run_id, plan.bare.warmup, plan.bare.runs)
            results.put("bare_image", program.language, value)
            _show("bare_image", program.language, value)

    def engine() -> None:
        for program in programs:
            value = measure_engine(program, ctx.run_id, plan.engine.warmup, plan.engine.runs)
            results.put("engine", program.language, value)
            _show("engine", program.language, value)

    def churn() -> None:
        for program in programs:
            rate = measure_churn(
                program,
                ctx.run_id,
                concurrency=plan.concurrency,
                window=plan.window,
                warmup=plan.window_warmup,
            )
            results.put_rate("engine", program.language, rate)
            say(f"  churn [{program.language}]: {rate.rate:.2f}/s, {rate.errors} errors")

    def peers() -> None:
        for case in CASES:
            for program in programs:
                value = run_peer(
                    case, program, run_id=ctx.run_id, warmup=plan.peers.warmup, runs=plan.peers.runs
                )
                results.put(case.key, program.language, value)
                _show(case.key, program.language, value)

    _phase(ctx, "bare interpreter", bare)
    _phase(ctx, "bare interpreter inside the image", bare_image)
    _phase(ctx, "raw engine, one at a time", engine)
    _phase(ctx, "CodeBeaker, pool disabled", lambda: _codebeaker(plan, results, ctx, warm=False))
    _phase(ctx, "CodeBeaker, warm pool", lambda: _codebeaker(plan, results, ctx, warm=True))
    _phase(ctx, f"raw engine churn, {plan.concurrency} workers", churn)
    if plan.skip_peers:
        results.notes.append("peers skipped (--skip-peers)")
    else:
        _phase(ctx, "peers", peers)


def _codebeaker(plan: Plan, results: Results, ctx: Context, *, warm: bool) -> None:
    kind = "warm" if warm else "cold"
    instance = f"bench-{ctx.run_id}-{kind}"
    ctx.instances.append(instance)
    flags = ["--max-concurrency", str(max(8, plan.concurrency))]
    if results.pool_flag:
        flags += ["--pool-size", str(plan.pool_size if warm else 0)]
    server = ServerProcess(instance, flags, RESULTS_DIR / f"server-{kind}.log")
    figures = ["cb_warm", "cb_warm_b2b", "stream_first"] if warm else ["cb_cold"]
    try:
        server.start()
    except ServerError as error:
        for figure in figures:
            for lang in plan.languages:
                results.put(figure, lang, Unavailable(str(error)))
        return
    try:
        service = Service(server.address)
        try:
            _measure_server(plan, results, ctx, server, service, warm=warm)
        except ServerGone as error:
            results.notes.append(f"{error}: figures after that are missing")
        finally:
            service.close()
    finally:
        server.stop()


def _measure_server(
    plan: Plan,
    results: Results,
    ctx: Context,
    server: ServerProcess,
    service: Service,
    *,
    warm: bool,
) -> None:
    runtimes = service.stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=30).runtimes
    pooled = warm and results.pool_flag
    expected = plan.pool_size * len(runtimes)

    missed = [0]

    def refill() -> None:
        server.check_alive()
        if pooled:
            time.sleep(plan.gap)
            if not server.wait_for_pool(expected, 5.0):
                missed[0] += 1

    if pooled and not server.wait_for_pool(expected, POOL_FILL_TIMEOUT):
        results.notes.append(f"warm pool never showed {expected} running containers")
    for lang in plan.languages:
        program = ctx.programs[lang]
        if not warm:
            value = measure_execute(
                service,
                program,
                warmup=plan.cold.warmup,
                runs=plan.cold.runs,
                before_each=server.check_alive,
            )
            results.put("cb_cold", lang, value)
            _show("cb_cold", lang, value)
            continue
        note = "each call on an idle server: pool full, used containers removed" if pooled else ""
        value = measure_execute(
            service,
            program,
            warmup=plan.warm.warmup,
            runs=plan.warm.runs,
            before_each=refill,
            note=note,
        )
        results.put("cb_warm", lang, value)
        _show("cb_warm", lang, value)
        refill()
        value = measure_execute(
            service,
            program,
            warmup=plan.warm.warmup,
            runs=plan.warm.runs,
            before_each=server.check_alive,
        )
        results.put("cb_warm_b2b", lang, value)
        _show("cb_warm_b2b", lang, value)
        refill()
        value = measure_first_output(
            service, program, warmup=plan.stream.warmup, runs=plan.stream.runs, before_each=refill
        )
        results.put("stream_first", lang, value)
        _show("stream_first", lang, value)
    if missed[0]:
        results.notes.append(f"{missed[0]} paced calls went ahead with the pool not yet idle")
    if warm:
        for lang in plan.languages:
            if pooled:
                server.wait_for_pool(expected, POOL_FILL_TIMEOUT)
            rate: Throughput = measure_throughput(
                service,
                ctx.programs[lang],
                concurrency=plan.concurrency,
                window=plan.window,
                warmup=plan.window_warmup,
            )
            results.put_rate("cb", lang, rate)
            say(f"  throughput [{lang}]: {rate.rate:.2f}/s, {rate.errors} errors")
