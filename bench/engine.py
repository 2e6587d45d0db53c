"""The raw engine: `docker run --rm --network none IMAGE interpreter -c HELLO`, minus the CLI.

create + start + wait + remove through docker-py's low-level APIClient, the
same calls a sandbox needs at minimum. Every container carries the bench's
label so a sweep can find it whatever happens.
"""

from __future__ import annotations

import docker
import docker.utils

from bench.programs import BENCH_LABEL, HELLO_OUTPUT, Program
from bench.stats import Summary, collect, timed
from bench.throughput import Throughput, run_window


def api_client(pool: int = 10) -> docker.APIClient:
    # "auto": the engine's own API version (Docker 29 refuses clients below 1.44).
    return docker.APIClient(
        version="auto", timeout=60, max_pool_size=pool, **docker.utils.kwargs_from_env()
    )


class RawEngine:
    def __init__(self, api: docker.APIClient, program: Program, run_id: str) -> None:
        self._api = api
        self._program = program
        self._labels = {BENCH_LABEL: run_id}
        self._host_config = api.create_host_config(network_mode="none")

    def _create(self) -> str:
        created = self._api.create_container(
            self._program.image,
            command=self._program.inline_command(),
            network_disabled=True,
            labels=self._labels,
            host_config=self._host_config,
        )
        return str(created["Id"])

    def run_once(self) -> None:
        container = self._create()
        try:
            self._api.start(container)
            status = self._api.wait(container, timeout=60)
            if status["StatusCode"] != 0:
                raise RuntimeError(f"exit {status['StatusCode']}")
        finally:
            self._api.remove_container(container, force=True)

    def check_output(self) -> None:
        """Once, outside the timing: the container prints what the program should."""
        container = self._create()
        try:
            self._api.start(container)
            self._api.wait(container, timeout=60)
            out = self._api.logs(container, stdout=True, stderr=False)
            if out != HELLO_OUTPUT:
                raise RuntimeError(f"raw engine printed {out[:80]!r}")
        finally:
            self._api.remove_container(container, force=True)


def measure_engine(program: Program, run_id: str, warmup: int, runs: int) -> Summary:
    api = api_client()
    try:
        engine = RawEngine(api, program, run_id)
        engine.check_output()
        return collect(timed(engine.run_once), warmup=warmup, runs=runs)
    finally:
        api.close()


def measure_churn(
    program: Program, run_id: str, *, concurrency: int, window: float, warmup: float
) -> Throughput:
    """`concurrency` workers, each with its own client, churning containers."""
    clients = [api_client(pool=2) for _ in range(concurrency)]
    engines = [RawEngine(api, program, run_id) for api in clients]
    try:
        return run_window(
            lambda index: engines[index].run_once(),
            concurrency=concurrency,
            window=window,
            warmup=warmup,
        )
    finally:
        for api in clients:
            api.close()
