"""The run itself, phase by phase, in an order that keeps them from disturbing each other.

bare interpreter -> raw engine -> CodeBeaker, pool disabled -> CodeBeaker, warm
pool (latency, first output, throughput) -> CodeBeaker, reusable hosts (the
same, `bench/hosts.py`) -> raw engine churn -> peers. Each server is stopped
before the next phase; nothing of one phase runs in the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.bare import measure_bare
from bench.context import Context, say, show
from bench.engine import measure_churn, measure_engine
from bench.hosts import measure_hosts
from bench.image_bare import measure_image_bare
from bench.peers import CASES, run_peer
from bench.plan import Plan
from bench.results import Results
from bench.server import ServerProcess, supports_flag
from bench.service import Service, measure_execute, measure_first_output, measure_throughput
from bench.serving import with_server
from bench.throughput import Throughput
from codebeaker.v1 import execution_pb2 as pb

POOL_FILL_TIMEOUT = 60.0


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
            show("bare", program.language, value)

    def bare_image() -> None:
        for program in programs:
            value = measure_image_bare(program, ctx.run_id, plan.bare.warmup, plan.bare.runs)
            results.put("bare_image", program.language, value)
            show("bare_image", program.language, value)

    def engine() -> None:
        for program in programs:
            value = measure_engine(program, ctx.run_id, plan.engine.warmup, plan.engine.runs)
            results.put("engine", program.language, value)
            show("engine", program.language, value)

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
                show(case.key, program.language, value)

    _phase(ctx, "bare interpreter", bare)
    _phase(ctx, "bare interpreter inside the image", bare_image)
    _phase(ctx, "raw engine, one at a time", engine)
    _phase(ctx, "CodeBeaker, pool disabled", lambda: _codebeaker(plan, results, ctx, warm=False))
    _phase(ctx, "CodeBeaker, warm pool", lambda: _codebeaker(plan, results, ctx, warm=True))
    _phase(ctx, "CodeBeaker, reusable hosts", lambda: measure_hosts(plan, results, ctx))
    _phase(ctx, f"raw engine churn, {plan.concurrency} workers", churn)
    if plan.skip_peers:
        results.notes.append("peers skipped (--skip-peers)")
    else:
        _phase(ctx, "peers", peers)


def _codebeaker(plan: Plan, results: Results, ctx: Context, *, warm: bool) -> None:
    kind = "warm" if warm else "cold"
    flags = ["--max-concurrency", str(max(8, plan.concurrency))]
    if supports_flag("--isolation"):
        flags += ["--isolation", "container"]  # one container per run: this phase's subject
    if results.pool_flag:
        flags += ["--pool-size", str(plan.pool_size if warm else 0)]
    figures = ["cb_warm", "cb_warm_b2b", "stream_first"] if warm else ["cb_cold"]

    def measure(server: ServerProcess, service: Service) -> None:
        _measure_server(plan, results, ctx, server, service, warm=warm)

    with_server(ctx, results, kind, flags, figures, measure)


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
            show("cb_cold", lang, value)
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
        show("cb_warm", lang, value)
        refill()
        value = measure_execute(
            service,
            program,
            warmup=plan.warm.warmup,
            runs=plan.warm.runs,
            before_each=server.check_alive,
        )
        results.put("cb_warm_b2b", lang, value)
        show("cb_warm_b2b", lang, value)
        refill()
        value = measure_first_output(
            service, program, warmup=plan.stream.warmup, runs=plan.stream.runs, before_each=refill
        )
        results.put("stream_first", lang, value)
        show("stream_first", lang, value)
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
