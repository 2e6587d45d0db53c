"""CodeBeaker on reusable hosts (`--isolation host`): the figures of the throughput issue.

One server, measured as the warm pool is: paced calls (a pause between them),
back to back, the first streamed output, and `concurrency` callers for the
throughput window. Also the program's own wall time as the host's supervisor
measured it inside the nested sandbox, which set beside the image's own
interpreter run bare in one container (`bare_image`) is the cost of the
nested sandbox itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.context import Context, show
from bench.plan import Plan
from bench.programs import Program
from bench.results import Results
from bench.server import ServerProcess, supports_flag
from bench.service import Service, measure_execute, measure_first_output, measure_throughput
from bench.serving import with_server
from bench.stats import Summary, Unavailable
from codebeaker.v1 import execution_pb2 as pb

FIGURES = ("cb_host", "cb_host_b2b", "host_stream_first", "host_program")
HOSTS_UP_TIMEOUT = 60.0


def measure_hosts(plan: Plan, results: Results, ctx: Context) -> None:
    if not supports_flag("--isolation"):
        for figure in FIGURES:
            for lang in plan.languages:
                results.put(figure, lang, Unavailable("this server has no --isolation flag"))
        return
    callers = str(max(8, plan.concurrency))
    flags = ["--isolation", "host", "--max-concurrency", callers, "--hosts-max", callers]

    def measure(server: ServerProcess, service: Service) -> None:
        _measure(plan, results, ctx, server, service)

    with_server(ctx, results, "hosts", flags, FIGURES, measure)


def _measure(
    plan: Plan, results: Results, ctx: Context, server: ServerProcess, service: Service
) -> None:
    # Measured on an idle server, as the warm pool is: every language's host up first.
    runtimes = service.stub.ListRuntimes(pb.ListRuntimesRequest(), timeout=30).runtimes
    if not server.wait_for_pool(len(runtimes), HOSTS_UP_TIMEOUT):
        results.notes.append(f"the reusable-host server never showed {len(runtimes)} hosts")

    def paced() -> None:
        server.check_alive()
        time.sleep(plan.gap)  # the pause is the point: a caller with think time

    for lang in plan.languages:
        _latencies(plan, results, service, ctx.programs[lang], paced, server.check_alive)
    for lang in plan.languages:
        rate = measure_throughput(
            service,
            ctx.programs[lang],
            concurrency=plan.concurrency,
            window=plan.window,
            warmup=plan.window_warmup,
        )
        results.put_rate("cb_host", lang, rate)
        print(f"bench:   throughput on hosts [{lang}]: {rate.rate:.2f}/s, {rate.errors} errors")


def _latencies(
    plan: Plan,
    results: Results,
    service: Service,
    program: Program,
    paced: Callable[[], None],
    alive: Callable[[], None],
) -> None:
    lang = program.language
    figures: dict[str, Callable[[], Summary]] = {
        "cb_host": lambda: measure_execute(
            service, program, warmup=plan.warm.warmup, runs=plan.warm.runs, before_each=paced
        ),
        "cb_host_b2b": lambda: measure_execute(
            service, program, warmup=plan.warm.warmup, runs=plan.warm.runs, before_each=alive
        ),
        "host_stream_first": lambda: measure_first_output(
            service, program, warmup=plan.stream.warmup, runs=plan.stream.runs, before_each=paced
        ),
        "host_program": lambda: Summary(
            tuple(service.execute(program) for _ in range(plan.warm.runs))
        ),
    }
    for figure, measure in figures.items():
        value = measure()
        results.put(figure, lang, value)
        show(figure, lang, value)
