"""A real Prometheus scrapes the real server and answers PromQL about a known sequence of runs.

The server runs in-process over Docker with `--metrics-address` on a loopback
port; Debian's `prometheus` scrapes it every second. After a known sequence
of executions (some fine, some failing in known ways, one refused), PromQL
through Prometheus's HTTP API must count exactly those, by language and
status; and every query of the Grafana dashboard must be valid PromQL
returning data from this server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codebeaker.client import Client, ExecutionStatus, InvalidArgumentError, Limits
from codebeaker.runtimes.catalog import Catalog
from tests.integration.inprocess import InProcessServer, in_process_server
from tests.integration.prometheus import Prometheus, prometheus

pytestmark = pytest.mark.docker
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy/grafana/dashboards/codebeaker.json"
RUNS: list[tuple[str, str, Limits | None, ExecutionStatus]] = [
    ("python", "print('ok')", None, ExecutionStatus.OK),
    ("python", "print('ok')", None, ExecutionStatus.OK),
    ("python", "import sys; sys.exit(3)", None, ExecutionStatus.RUNTIME_ERROR),
    ("python", "import sys; sys.exit(4)", None, ExecutionStatus.RUNTIME_ERROR),
    (
        "python",
        "import time; time.sleep(30)",
        Limits(wall_time=0.5),
        ExecutionStatus.TIME_LIMIT_EXCEEDED,
    ),
    (
        "python",
        "print('x' * 5000)",
        Limits(max_output_bytes=100),
        ExecutionStatus.OUTPUT_LIMIT_EXCEEDED,
    ),
    ("javascript", "console.log('ok')", None, ExecutionStatus.OK),
]
EXPECTED = {
    ("python", "ok"): 2,
    ("python", "runtime_error"): 2,
    ("python", "time_limit_exceeded"): 1,
    ("python", "output_limit_exceeded"): 1,
    ("javascript", "ok"): 1,
}


@pytest.fixture(scope="module")
def scraped() -> Iterator[tuple[InProcessServer, Prometheus]]:
    with in_process_server(metrics_address="127.0.0.1:0") as server:
        target = f"127.0.0.1:{server.app.metrics_port}"
        with Client(server.address, timeout=60) as client:
            for language, source, limits, status in RUNS:
                assert client.execute(language, source, limits=limits).status is status
            with pytest.raises(InvalidArgumentError):
                client.execute("no-such-language", "DISPLAY 'HI'.")
        with prometheus([target]) as running:
            yield server, running


def counts(result: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    return {
        (item["metric"]["language"], item["metric"]["status"]): int(float(item["value"][1]))
        for item in result
    }


def test_promql_counts_executions_by_language_and_status(
    scraped: tuple[InProcessServer, Prometheus],
) -> None:
    _, server = scraped
    query = 'sum by (language, status) (codebeaker_executions_total{job="codebeaker"})'
    result = server.wait_for(query, lambda found: counts(found) == EXPECTED)
    assert counts(result) == EXPECTED


def test_promql_sees_the_grpc_families_and_the_limits_hit(
    scraped: tuple[InProcessServer, Prometheus],
) -> None:
    _, server = scraped
    handled = 'sum by (grpc_code) (grpc_server_handled_total{grpc_method="Execute"})'
    result = server.wait_for(handled, lambda found: len(found) == 2)
    by_code = {item["metric"]["grpc_code"]: int(float(item["value"][1])) for item in result}
    assert by_code == {"OK": len(RUNS), "INVALID_ARGUMENT": 1}
    single = {
        'sum(grpc_server_started_total{grpc_method="Execute"})': len(RUNS) + 1,
        'sum(grpc_server_handling_seconds_count{grpc_method="Execute"})': len(RUNS) + 1,
        'sum(codebeaker_timeouts_total{limit="wall_time"})': 1,
        'sum(codebeaker_output_truncations_total{stream="stdout"})': 1,
        'sum(codebeaker_phase_duration_seconds_count{phase="run"})': len(RUNS),
        "sum(codebeaker_executions_in_flight)": 0,
    }
    for query, wanted in single.items():
        (item,) = server.wait_for(query, lambda found: bool(found))
        assert int(float(item["value"][1])) == wanted, query
    pools = server.query("codebeaker_pool_size")
    # Pools of the warm languages from the start; the others' once they are used.
    pooled = {item["metric"]["language"] for item in pools}
    runtimes = Catalog.load().runtimes()  # a version's pool is named by its key
    assert {s.key for s in runtimes if s.warm} <= pooled <= {s.key for s in runtimes}


def test_every_dashboard_query_is_valid_promql_with_data(
    scraped: tuple[InProcessServer, Prometheus],
) -> None:
    _, server = scraped
    # rate() needs two samples in its window: wait for a few scrapes.
    scrapes = 'count_over_time(up{job="codebeaker"}[1m])'
    server.wait_for(scrapes, lambda found: bool(found) and float(found[0]["value"][1]) >= 3)
    panels = json.loads(DASHBOARD.read_text())["panels"]
    queries = [target["expr"] for panel in panels for target in panel.get("targets", [])]
    assert queries
    empty = []
    for query in queries:
        promql = re.sub(r"\$__rate_interval", "1m", query)
        if not server.query(promql):  # raises on invalid PromQL
            empty.append(query)
    # Failure-only series (creation failures, OOM kills, rejections) may be empty here,
    # and so may the tenant series: they exist only on a server with --tenants; and the
    # queue's finished operations by state: none is submitted here.
    allowed = (
        "create_failures",
        "oom_kills",
        "rejections",
        "DATA_LOSS",
        "admission_waits",
        "codebeaker_tenant_",
        "codebeaker_operations_finished_total",
    )
    assert [q for q in empty if not any(word in q for word in allowed)] == []
