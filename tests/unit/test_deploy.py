"""deploy/: the compose file and Prometheus config are valid, and the dashboard fits the metrics.

The images of the stack cannot be pulled on our machines, so the stack is
checked by the tools that read these files (`docker-compose config`,
`promtool check config`) and the dashboard against the server's own metric
registry: every CodeBeaker family is on it, and it asks for nothing the
server does not export (its queries run against a real Prometheus in
tests/integration/test_prometheus.py).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from prometheus_client import Metric

from codebeaker.server.admission import Admission
from codebeaker.server.metrics import Metrics
from tests.tools import require
from tests.unit.fake_sandbox import FakeSandbox

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def test_the_compose_file_is_valid() -> None:
    compose = require("docker-compose")
    done = subprocess.run(
        [compose, "-f", str(DEPLOY / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for service in ("codebeaker:", "prometheus:", "grafana:", "jaeger:"):
        assert service in done.stdout
    assert "/var/run/docker.sock" in done.stdout
    assert "OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4317" in done.stdout


def test_the_prometheus_config_is_valid() -> None:
    promtool = require("promtool")
    done = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def exported_series() -> dict[str, set[str]]:
    """Family name -> the series names it exports, from a server's registry."""
    metrics = Metrics()
    metrics.watch(Admission(1, 1.0), FakeSandbox().pool_stats)
    families: list[Metric] = list(metrics.registry.collect())
    return {
        family.name: {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
        for family in families
    }


def test_the_dashboard_shows_every_codebeaker_metric_and_only_real_ones() -> None:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/codebeaker.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    used = set(re.findall(r"\b((?:codebeaker|grpc_server|process)_[a-z_]+)\b", " ".join(queries)))
    exported = exported_series()
    known = set().union(*exported.values())
    assert used - known == set()
    ours = [name for name in exported if name.startswith(("codebeaker_", "grpc_server_"))]
    assert len(ours) >= 18
    assert [name for name in ours if not exported[name] & used] == []


def test_grafana_is_provisioned_with_the_dashboard_and_both_data_sources() -> None:
    sources = (DEPLOY / "grafana/provisioning/datasources/datasources.yaml").read_text()
    assert "type: prometheus" in sources and "type: jaeger" in sources
    dashboards = (DEPLOY / "grafana/provisioning/dashboards/dashboards.yaml").read_text()
    assert "path: /var/lib/grafana/dashboards" in dashboards
    panels = json.loads((DEPLOY / "grafana/dashboards/codebeaker.json").read_text())["panels"]
    assert all(t["datasource"]["uid"] == "prometheus" for p in panels for t in p.get("targets", []))
