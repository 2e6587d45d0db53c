"""One CodeBeaker server for one phase: started, measured, always stopped.

A server that does not start leaves its figures `Unavailable` with the reason;
one that exits mid-phase leaves a note and the figures measured until then.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bench.context import Context
from bench.plan import RESULTS_DIR
from bench.results import Results
from bench.server import ServerError, ServerGone, ServerProcess
from bench.service import Service
from bench.stats import Unavailable


def with_server(
    ctx: Context,
    results: Results,
    kind: str,
    flags: Sequence[str],
    figures: Sequence[str],
    measure: Callable[[ServerProcess, Service], None],
) -> None:
    instance = f"bench-{ctx.run_id}-{kind}"
    ctx.instances.append(instance)
    server = ServerProcess(instance, list(flags), RESULTS_DIR / f"server-{kind}.log")
    try:
        server.start()
    except ServerError as error:
        for figure in figures:
            for lang in results.languages:
                results.put(figure, lang, Unavailable(str(error)))
        return
    try:
        service = Service(server.address)
        try:
            measure(server, service)
        except ServerGone as error:
            results.notes.append(f"{error}: the {kind} server's figures after that are missing")
        finally:
            service.close()
    finally:
        server.stop()
